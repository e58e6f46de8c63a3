"""What every token store does: hold a lock across a refresh, save durably, rescue a token."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tap_close.credentials import AuthError, fingerprint

SAVE_TRIES = 4
logger = logging.getLogger("tap-close.auth")


def state_dir() -> Path:
    """$XDG_STATE_HOME/tap-close (or ~/.local/state/tap-close)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tap-close"


def client_slug(client_id: str) -> str:
    """A file-name-safe, unique form of a client id."""
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", client_id)[:40]
    return f"{slug}-{fingerprint(client_id)[:8]}"


def missing_extra(setting: str, scheme: str, extra: str) -> AuthError:
    return AuthError(f"{setting}: a {scheme}:// token store needs the `{extra}` extra: "
                     f"pip install 'tap-close[{extra}]'")


def valid_record(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("refresh_token"), str)


#: A file or S3 object holds the chain refreshed last at its top level (the layout of one
#: chain, as before) and every other chain under this key, so that configs with different
#: refresh tokens (two organizations, staging and production) can share one store.
OTHERS = "other_chains"
MAX_CHAINS = 32  # per file or object; the least recently refreshed beyond are dropped


def chain_key(record: dict[str, Any], client_id: str | None = None) -> str:
    """`client_id`: the store's, for a record written before records named their client."""
    return f"{record.get('client_id', client_id)}:{record.get('seed')}"


def chains_of(data: dict[str, Any] | None, client_id: str | None = None
              ) -> dict[str, dict[str, Any]]:
    """Every chain in a stored document (see `OTHERS`), by `chain_key`."""
    if not data:
        return {}
    chains = dict((data.get(OTHERS) or {}).items())
    top = {k: v for k, v in data.items() if k not in (OTHERS, "lease")}
    if top:
        chains[chain_key(top, client_id)] = top
    return chains


def document(chains: dict[str, dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    """The document to store: `record` on top, the other chains (newest first) under OTHERS."""
    others = {k: v for k, v in chains.items() if k != chain_key(record)}
    if len(others) >= MAX_CHAINS:
        dropped = sorted(others, key=lambda k: str(others[k].get("updated_at")))
        for key in dropped[: len(others) - MAX_CHAINS + 1]:
            del others[key]
        logger.warning("The token store holds more than %d OAuth chains: the least recently "
                       "refreshed are dropped.", MAX_CHAINS)
    return {**record, OTHERS: others} if others else dict(record)


class TokenStore:
    """The newest refresh token (and access token) of one OAuth chain, shared between runs.

    A refresh runs inside `hold()`, which keeps every other process away from the chain:
    `load()`, then `prepare()` (proves a write will work) before the token is spent, then
    `save_durably()` before the new access token is used.
    """

    def __init__(self, *, setting: str, location: str, client_id: str, seed: str) -> None:
        self.setting = setting  # the setting errors name
        self.location = location  # printable: never holds a password
        self.client_id = client_id
        self.seed = seed  # fingerprint of the configured refresh token that starts the chain

    def __str__(self) -> str:
        return self.location

    @property
    def chain(self) -> str:
        """This chain's key in a store that holds several (see `OTHERS`)."""
        return chain_key({"client_id": self.client_id, "seed": self.seed})

    def error(self, what: str) -> AuthError:
        return AuthError(f"{self.setting}: {what}")

    def invalid(self, where: object) -> AuthError:
        return self.error(f"{where} is not a valid token store; delete it and set "
                          "refresh_token to a fresh token from tap-close-auth")

    def parse(self, text: str | bytes, where: object, *, empty: bool = False) -> dict[str, Any]:
        """The record in `text` (JSON); with `empty`, an object without a token is allowed
        (the S3 store's `{}` or lease alone)."""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not valid_record(data) and not (
                empty and isinstance(data, dict) and set(data) <= {"lease"}):
            raise self.invalid(where)
        others = data.get(OTHERS, {})
        if not isinstance(others, dict) or not all(map(valid_record, others.values())):
            raise self.invalid(where)
        return data

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Exclusive use of the chain (across processes and machines) for one refresh."""
        yield

    def check(self) -> None:
        """Raise AuthError unless the store can be reached and written."""
        with self.hold():
            self.load()
            self.prepare()

    def load(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def prepare(self) -> None:
        """Before a token is spent: make sure the following save can succeed."""

    def save(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def save_durably(self, record: dict[str, Any]) -> None:
        """Save, retrying; if the store stays unreachable, rescue the token to a local 0600
        file and stop with an error naming it. The token is never printed."""
        problem = None
        for attempt in range(SAVE_TRIES):
            try:
                self.save(record)
                return
            except AuthError as exc:
                problem = exc
                if attempt + 1 < SAVE_TRIES:
                    logger.warning("%s; retrying.", exc)
                    time.sleep(0.5 * 2**attempt)
        rescued = rescue(record)
        where = (f"it was saved to {rescued} (mode 0600): set that refresh_token in the config "
                 "(or copy the file into the store) before the next run") if rescued else (
                 "no local file could be written either: re-authorize with `tap-close-auth`")
        raise AuthError(f"{problem}. The rotated refresh token could not be stored; {where}.")


def rescue(record: dict[str, Any]) -> Path | None:
    """Write `record` to a new 0600 file in the first writable of a few local directories."""
    name = (f"oauth-rescued-{client_slug(str(record.get('client_id') or ''))}-"
            f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.json")
    for folder in (state_dir(), Path.cwd(), Path(tempfile.gettempdir())):
        path = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            continue
        return path
    return None
