"""The token store in a local file: atomic writes, an flock across a refresh."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tap_close.stores.base import TokenStore, chains_of, client_slug, document, state_dir


def default_path(client_id: str, seed: str) -> Path:
    """One file per client id *and* chain: two organizations sharing an OAuth app never
    overwrite each other's chain."""
    return state_dir() / f"oauth-{client_slug(client_id)}-{seed[:12]}.json"


def legacy_default_path(client_id: str) -> Path:
    """The default path before it was keyed by chain (read once, to carry the chain over)."""
    return state_dir() / f"oauth-{client_slug(client_id)}.json"



def drop_temp(fd: int, name: str) -> None:
    """Close and remove a temp file that was not renamed into place (errors ignored)."""
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)

class FileStore(TokenStore):
    """A JSON file (mode 0600) written by temp file, fsync and rename."""

    def __init__(self, path: str | Path, *, client_id: str, seed: str,
                 setting: str = "token_store_path", legacy: Path | None = None) -> None:
        self.path = Path(path).expanduser()
        super().__init__(setting=setting, location=str(self.path), client_id=client_id,
                         seed=seed)
        self.legacy = legacy
        self._migrated = False
        self._temp: tuple[int, str] | None = None
        self._chains: dict[str, dict[str, Any]] | None = None  # as read by `load`

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _ensure_dir(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise self.error(f"cannot create directory {self.path.parent} "
                             f"({exc.strerror})") from None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self._ensure_dir()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self.error(f"cannot open lock file {self.lock_path} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._chains = None  # read again under the lock
            yield
        finally:
            self._drop_temp()
            self._chains = None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.error(f"cannot read {path} ({exc.strerror})") from None
        return self.parse(text, path)

    def load(self) -> dict[str, Any] | None:
        """This chain's record (the file may hold other chains too: see `OTHERS`)."""
        self._chains = chains_of(self._read(self.path), self.client_id)
        mine = self._chains.get(self.chain)
        if mine is None and self.legacy is not None and self.legacy.exists():
            old = chains_of(self._read(self.legacy), self.client_id).get(self.chain)
            if old:  # this chain, under the old name
                self._migrated = True
                return old
        return mine

    def prepare(self) -> None:
        """Create the temp file now: a directory that cannot take it fails before the token
        is spent."""
        self._ensure_dir()
        if self._temp is None:
            try:
                self._temp = tempfile.mkstemp(prefix=".tmp-", dir=self.path.parent)
                os.fchmod(self._temp[0], 0o600)
            except OSError as exc:
                self._drop_temp()
                raise self.error(f"cannot write in {self.path.parent} ({exc.strerror})") from None

    def check(self) -> None:
        """The directory takes a file (no lock file is left behind)."""
        self.prepare()
        self._drop_temp()

    def _drop_temp(self) -> None:
        if self._temp is not None:
            temp, self._temp = self._temp, None
            drop_temp(*temp)

    def save(self, record: dict[str, Any]) -> None:
        """Atomically replace the store: temp file in the same dir, fsync, rename."""
        if self._chains is None:
            self.load()
        chains = self._chains or {}
        self.prepare()
        assert self._temp is not None
        fd, name = self._temp
        try:
            data = json.dumps(document(chains, record)).encode()
            if os.write(fd, data) != len(data):
                raise OSError(28, "No space left on device")
            os.fsync(fd)
            os.close(fd)
            self._temp = None
            os.replace(name, self.path)
            self._chains = {**chains, self.chain: record}
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            self._temp = (-1, name) if self._temp is None else self._temp
            self._drop_temp()
            raise self.error(f"cannot write {self.path} ({exc.strerror})") from None
        if self._migrated and self.legacy is not None:
            with contextlib.suppress(OSError):
                self.legacy.unlink()
            self._migrated = False
