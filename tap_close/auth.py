"""Authenticators (API key, OAuth with rotating refresh tokens) and the durable token store."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth

logger = logging.getLogger("tap-close.auth")

DEFAULT_TOKEN_URL = "https://api.close.com/oauth2/token/"  # noqa: S105 - a URL
AUTHORIZE_URL = "https://app.close.com/oauth2/authorize/"


class AuthError(Exception):
    """A credential problem the user must fix; the message never holds a secret."""


# Every credential this process holds, so that no output line can carry one (Close or a proxy
# may repeat a request's Authorization header in an error message).
_secrets: set[str] = set()
_secrets_lock = threading.RLock()  # re-entrant: a signal handler may log (and redact)
REDACTED = "[redacted]"


def register_secret(value: str | None, *, basic: bool = False) -> None:
    """Remember a credential (and, for an API key, its HTTP Basic form) for `redact`."""
    if not value or len(value) < 4:
        return
    forms = {value}
    if basic:
        forms.add(base64.b64encode(f"{value}:".encode()).decode())
    with _secrets_lock:
        _secrets.update(forms)


def redact(text: str) -> str:
    """`text` with every registered credential replaced by [redacted]."""
    with _secrets_lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


# A stop signal (SIGTERM, SIGINT) that arrives while a refresh token is being rotated waits
# until the new token is saved: Close has already revoked the old one at that point.
_signal_lock = threading.RLock()  # re-entrant: the handler runs in the main thread
_critical = 0
_deferred: list[int] = []


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold stop signals (see `defer_signal`) until the block ends, then re-deliver them."""
    global _critical  # noqa: PLW0603
    with _signal_lock:
        _critical += 1
    try:
        yield
    finally:
        with _signal_lock:
            _critical -= 1
            pending = list(_deferred) if _critical == 0 else []
            if _critical == 0:
                _deferred.clear()
        for signum in pending:
            os.kill(os.getpid(), signum)


def defer_signal(signum: int) -> bool:
    """For signal handlers: True if a token rotation is under way and `signum` was queued."""
    with _signal_lock:
        if _critical:
            _deferred.append(signum)
            return True
    return False


def fingerprint(secret: str) -> str:
    """Return a short one-way fingerprint of a secret (safe to store and compare)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


def default_token_store_path(client_id: str) -> Path:
    """One token store file per client id under $XDG_STATE_HOME (or ~/.local/state)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", client_id)[:40]
    return Path(base) / "tap-close" / f"oauth-{slug}-{fingerprint(client_id)[:8]}.json"


class TokenStore:
    """A JSON file that holds the newest refresh token of one OAuth chain.

    Writes are atomic (temp file, fsync, rename, mode 0600); `lock()` serialises refreshes
    between processes so that two taps never spend the same single-use refresh token.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _ensure_dir(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            msg = f"token_store_path: cannot create directory {self.path.parent} ({exc.strerror})"
            raise AuthError(msg) from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive inter-process lock for the duration of a refresh."""
        self._ensure_dir()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            msg = f"token_store_path: cannot open lock file {self.lock_path} ({exc.strerror})"
            raise AuthError(msg) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def load(self) -> dict[str, Any] | None:
        """Return the stored state, None if there is none; a damaged file is an error."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            msg = f"token_store_path: cannot read {self.path} ({exc.strerror})"
            raise AuthError(msg) from None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("refresh_token"), str):
            msg = (
                f"token_store_path: {self.path} is not a valid token store; delete it and set "
                "refresh_token to a fresh token from tap-close-auth"
            )
            raise AuthError(msg)
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Atomically replace the store: temp file in the same dir, fsync, rename."""
        self._ensure_dir()
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.path.parent)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w") as fh:
                    json.dump(data, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            msg = f"token_store_path: cannot write {self.path} ({exc.strerror})"
            raise AuthError(msg) from None


def api_key_auth(api_key: str) -> AuthBase:
    """HTTP Basic with the API key as username and an empty password."""
    register_secret(api_key, basic=True)
    return HTTPBasicAuth(api_key, "")


class CloseOAuth(AuthBase):
    """OAuth 2.0 bearer auth that refreshes with Close's rotating, single-use refresh tokens.

    One instance serves every stream of a tap process (thread-safe). Each rotated refresh
    token is saved to the token store before the new access token is used.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        store: TokenStore,
        token_url: str = DEFAULT_TOKEN_URL,
        scopes: str | None = None,
        timeout: float = 60.0,
        user_agent: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self._configured_refresh = refresh_token
        register_secret(client_secret)
        register_secret(refresh_token)
        self._seed = fingerprint(refresh_token)
        self.store = store
        self.token_url = token_url
        self.scopes = scopes
        self.timeout = timeout
        self._session = session or requests.Session()  # the tap passes its one session
        if user_agent:
            self._session.headers["User-Agent"] = user_agent
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._expires_at = 0.0
        self.refresh_count = 0

    def __repr__(self) -> str:
        return f"CloseOAuth(client_id={self.client_id!r}, store={str(self.store.path)!r})"

    def close(self) -> None:
        """Close the token endpoint's connections (the tap calls this at exit)."""
        self._session.close()

    # requests hook
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def secrets(self) -> list[str]:
        """Every secret this authenticator holds (for output scrubbing in tests/logs)."""
        values = [self._client_secret, self._configured_refresh, self._access_token or ""]
        return [v for v in values if v]

    @staticmethod
    def _valid(expires_at: float) -> bool:
        return time.time() < expires_at

    def access_token(self) -> str:
        """Return a usable access token, refreshing it shortly before it expires."""
        with self._lock:
            if self._access_token and self._valid(self._expires_at):
                return self._access_token
            self._refresh(stale=self._access_token)
            assert self._access_token
            return self._access_token

    def invalidate(self, used_token: str | None) -> None:
        """Called after a 401: force a refresh unless another thread already did one."""
        with self._lock:
            if used_token is None or used_token == self._access_token:
                self._refresh(stale=self._access_token)

    @staticmethod
    def used_token(authorization: str) -> str | None:
        """The access token an Authorization header carried."""
        return authorization[7:] if authorization.startswith("Bearer ") else None

    def _refresh(self, stale: str | None) -> None:
        with self.store.lock():
            stored = self.store.load()
            if stored and stored.get("seed") != self._seed:
                logger.info("A new refresh_token is configured: it replaces the token store chain.")
                stored = None
            # Another process (or an earlier run) may hold a newer, still valid access token.
            if stored and stored.get("access_token") and stored.get("access_token") != stale:
                expires_at = float(stored.get("expires_at") or 0)
                if self._valid(expires_at):
                    self._access_token = str(stored["access_token"])
                    register_secret(self._access_token)
                    self._expires_at = expires_at
                    return
            refresh_token = stored["refresh_token"] if stored else self._configured_refresh
            with signals_deferred():  # once Close rotates the token, it must reach the store
                body = self._token_request(refresh_token)
                new_refresh = body.get("refresh_token") or refresh_token
                expires_in = float(body.get("expires_in") or 3600)
                # Refresh a little before expiry: 60 s, or a fifth of very short lifetimes.
                expires_at = time.time() + expires_in - min(60.0, expires_in / 5)
                self.store.save(
                    {
                        "client_id": self.client_id,
                        "seed": self._seed,
                        "refresh_token": new_refresh,
                        "access_token": body["access_token"],
                        "expires_at": expires_at,
                        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    }
                )
            self._access_token = str(body["access_token"])
            register_secret(self._access_token)
            register_secret(new_refresh)
            self._expires_at = expires_at
            self.refresh_count += 1
            logger.info("OAuth access token refreshed; rotated refresh token saved to %s",
                        self.store.path)

    def _token_request(self, refresh_token: str) -> dict[str, Any]:
        data = {
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        }
        if self.scopes:
            data["scope"] = self.scopes
        return exchange(
            self._session, self.token_url, data, timeout=self.timeout, store_path=self.store.path
        )


def _error_code(response: requests.Response) -> str:
    """The token endpoint's error code, only if it looks like a code (never free text)."""
    try:
        err = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return err if isinstance(err, str) and re.fullmatch(r"[a-z_]{1,40}", err) else ""


def exchange(
    session: requests.Session,
    token_url: str,
    data: dict[str, str],
    *,
    timeout: float = 60.0,
    store_path: Path | None = None,
    tries: int = 4,
) -> dict[str, Any]:
    """POST a grant to the token endpoint; retry transient failures, explain fatal ones."""
    where = f" (token store: {store_path})" if store_path else ""
    for attempt in range(1, tries + 1):
        try:
            # Never redirected (the form holds client_secret and refresh_token); 10 s to connect.
            response = session.post(token_url, data=data, timeout=(10.0, timeout),
                                    allow_redirects=False)
        except requests.RequestException as exc:
            if attempt == tries:
                msg = f"OAuth token endpoint unreachable: {type(exc).__name__}"
                raise AuthError(msg) from None
            time.sleep(min(2**attempt, 10))
            continue
        if 300 <= response.status_code < 400:
            msg = (f"OAuth token endpoint answered HTTP {response.status_code} (a redirect); "
                   "redirects are not followed, so the client secret and refresh token stay "
                   "with oauth_token_url. Check oauth_token_url.")
            raise AuthError(msg)
        if response.status_code >= 500 or response.status_code == 429:
            if attempt == tries:
                msg = f"OAuth token endpoint failed with HTTP {response.status_code}"
                raise AuthError(msg)
            time.sleep(min(2**attempt, 10))
            continue
        code = _error_code(response) if response.status_code >= 400 else ""
        if code == "invalid_grant":
            msg = (
                "OAuth refresh_token was rejected (invalid_grant): it was already used, revoked "
                "or expired. Re-authorize with `tap-close-auth` and set the new refresh_token"
                f"{where}."
            )
            raise AuthError(msg)
        if response.status_code in (400, 401) and code in ("invalid_client", "unauthorized_client"):
            msg = f"OAuth client_id/client_secret were rejected ({code})."
            raise AuthError(msg)
        if response.status_code >= 400:
            msg = f"OAuth token request failed with HTTP {response.status_code} {code}".rstrip()
            raise AuthError(msg + ".")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("access_token"):
            msg = "OAuth token endpoint returned no access_token."
            raise AuthError(msg)
        return body
    raise AuthError("OAuth token request failed.")  # pragma: no cover
