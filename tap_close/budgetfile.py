"""Rate-limit budgets shared by the tap processes of one machine that spend one Close budget.

One small JSON file per endpoint family (method + first path segment) in a directory under the
temp dir named by a hash of api_url and the credential's fingerprint (never the secret). Each
read-modify-write holds an exclusive `flock`, which the kernel drops when a process dies, so a
crashed process never blocks the others; its calls in flight stop counting once its pid is
gone. A file nobody wrote for 10 s is stale (Close's windows are seconds) and starts anew.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tap_close.auth import fingerprint

try:
    import fcntl
except ImportError:  # not POSIX: every process keeps its own budget
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("tap_close.ratelimit")

STALE = 10.0  # seconds: a file older than this holds no window still open
SWEEP = 3600.0  # files untouched this long are removed (under their lock)
STALE_INFLIGHT = 600.0  # seconds: a process's calls in flight expire if it stops writing


def budget_dir(api_url: str, who: str) -> Path:
    """Where the processes of one organization and credential meet: `who` is any string that
    tells credentials apart (hashed here with api_url; never written as is)."""
    name = fingerprint(f"{api_url.rstrip('/')}\0{who}")[:16]
    return Path(tempfile.gettempdir(), "tap-close-budgets", name)


class BudgetFiles:
    """`with files.open(family) as state:` reads the family's shared state (a dict, {} when
    there is none) under the file's lock and writes it back on exit. Times in it are this
    machine's `time.monotonic()` (`skew` 0); calls in flight are kept per process (`member`)."""

    skew = 0.0  # shared clock minus time.monotonic()
    heartbeat: float | None = None  # the pid tells whether a process lives: no heartbeat
    poll = 0.0  # a lock is cheap: no minimum between reads

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._fds: dict[str, int] = {}
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._sweep()

    @property
    def member(self) -> str:
        return str(os.getpid())

    def live(self, member: str, at: float, now: float) -> bool:
        """Whether calls in flight written by `member` at `at` still count."""
        return member.isdigit() and now - at < STALE_INFLIGHT and alive(int(member))

    def _path(self, family: str) -> Path:
        safe = "".join(c if c.isalnum() else "_" for c in family).strip("_")
        return self.dir / f"{safe}.json"

    def _fd(self, family: str) -> int:
        fd = self._fds.get(family)
        if fd is None:
            fd = self._fds[family] = os.open(self._path(family), os.O_RDWR | os.O_CREAT, 0o600)
        return fd

    @contextlib.contextmanager
    def open(self, family: str) -> Iterator[dict[str, Any]]:
        try:
            fd = self._locked(family)
        except OSError as exc:  # e.g. the directory removed: this call is not shared
            logger.debug("Rate-limit budget file for %s: %s", family, exc)
            yield {}
            return
        try:
            try:
                state = json.loads(os.pread(fd, 1 << 20, 0) or b"{}")
            except (OSError, ValueError):  # e.g. a writer died mid-write
                state = {}
            age = time.monotonic() - state.get("at", -1) if isinstance(state, dict) else -1
            if not 0 <= age <= STALE:
                state = {}
            yield state
            state["at"] = time.monotonic()
            raw = json.dumps(state, separators=(",", ":")).encode()
            with contextlib.suppress(OSError):
                os.pwrite(fd, raw, 0)
                os.ftruncate(fd, len(raw))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _locked(self, family: str) -> int:
        """The family's file, locked; reopened if it was swept while we waited."""
        fd = self._fd(family)
        fcntl.flock(fd, fcntl.LOCK_EX)
        while os.fstat(fd).st_nlink == 0:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(self._fds.pop(family))
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = self._fd(family)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _sweep(self) -> None:
        """Remove other organizations' long-unused files (they pile up in a test run)."""
        root, now = self.dir.parent, time.time()
        for path in root.glob("*/*.json"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime < SWEEP:
                    continue
                fd = os.open(path, os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    if now - os.fstat(fd).st_mtime >= SWEEP:
                        path.unlink()
                finally:
                    os.close(fd)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def open_files(api_url: str, who: str) -> BudgetFiles | None:
    """The machine's shared budgets, or None (each process on its own) where that fails."""
    if fcntl is None:
        return None
    try:
        return BudgetFiles(budget_dir(api_url, who))
    except OSError as exc:
        logger.warning("Rate-limit budgets are not shared with other tap processes on this "
                       "machine (%s)", exc.strerror or type(exc).__name__)
        return None
