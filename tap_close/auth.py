"""Authenticators (API key, OAuth with rotating refresh tokens); the stores are in `stores`."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from tap_close.credentials import (  # noqa: F401 - re-exported
    REDACTED,
    AuthError,
    InvalidGrant,
    fingerprint,
    redact,
    register_secret,
)
from tap_close.urls import direct

if TYPE_CHECKING:
    from tap_close.stores import TokenStore

logger = logging.getLogger("tap-close.auth")

DEFAULT_TOKEN_URL = "https://api.close.com/oauth2/token/"  # noqa: S105 - a URL
AUTHORIZE_URL = "https://app.close.com/oauth2/authorize/"


# A stop signal that arrives while a refresh token is being rotated waits until the new token
# is saved: Close has already revoked the old one at that point. Once a stop is accepted (or
# the process exits), no new rotation starts, and the exit waits for one under way.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")
                     if hasattr(signal, name))
EXIT_WAIT = 90.0  # seconds the exit waits for a rotation under way to be saved
_signal_lock = threading.RLock()  # re-entrant: the handler runs in the main thread
_idle = threading.Condition(_signal_lock)  # notified when no rotation is under way
_critical = 0
_deferred: list[int] = []
_stopping = False  # a stop was accepted, or the process is exiting: no new rotation
_exiting = False


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold stop signals (see `defer_signal`) until the block ends, then re-deliver them;
    AuthError instead when the process is stopping."""
    global _critical  # noqa: PLW0603
    with _signal_lock:
        if _stopping:
            raise AuthError("The process is stopping: no new OAuth token rotation is started.")
        _critical += 1
    try:
        yield
    finally:
        with _signal_lock:
            _critical -= 1
            pending = list(_deferred) if _critical == 0 and not _exiting else []
            if _critical == 0:
                _deferred.clear()
                _idle.notify_all()
        for signum in pending:
            os.kill(os.getpid(), signum)


def defer_signal(signum: int) -> bool:
    """For signal handlers: True if a token rotation is under way and `signum` was queued;
    False if the stop is accepted now (then no rotation starts any more)."""
    global _stopping  # noqa: PLW0603
    with _signal_lock:
        if _critical:
            _deferred.append(signum)
            return True
        _stopping = True
    return False


def wait_for_rotation(timeout: float = EXIT_WAIT, *, exiting: bool = True) -> bool:
    """Wait (at most `timeout` s) for a rotation under way to be saved; at exit, start no
    new one either. False if it did not finish in time."""
    global _stopping, _exiting  # noqa: PLW0603
    with _idle:
        if exiting:
            _stopping = _exiting = True
        return _idle.wait_for(lambda: _critical == 0, timeout)


def stop_on_signal(signum: int, frame: object) -> None:
    """A stop signal handler for the helper commands: exit 128 + signal, after a rotation."""
    if not defer_signal(signum):
        raise SystemExit(128 + signum)


def handle_stop_signals(handler: Callable[[int, Any], Any] = stop_on_signal) -> None:
    """Install `handler` for every stop signal (from the main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, handler)


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
        atexit.register(wait_for_rotation)  # worker threads are daemons: not waited for
        self._access_token: str | None = None
        self._expires_at = 0.0
        self.refresh_count = 0
        self._failed: AuthError | None = None  # a refresh failed for good
        self._spending: str | None = None  # the refresh token of the last token request
        self._invalid_grant = ""  # its error message, when Close refused it

    def __repr__(self) -> str:
        return f"CloseOAuth(client_id={self.client_id!r}, store={str(self.store)!r})"

    def close(self) -> None:
        """At exit: wait for a rotation under way to be saved, then close the token
        endpoint's connections."""
        wait_for_rotation(exiting=False)
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
        """Refresh once per caller; a credential error stops every thread at once (no thread
        spends a request, or leaves a temp file, on a chain already known to be dead)."""
        if self._failed is not None:
            raise AuthError(str(self._failed))
        try:
            try:
                self._refresh_once(stale)
            except InvalidGrant:
                # A process whose store lock was lost may have spent this token and saved its
                # successor: read the store again before asking to re-authorize.
                self._refresh_once(stale, rejected=self._spending)
        except AuthError as exc:
            self._failed = exc
            raise

    def _refresh_once(self, stale: str | None, rejected: str | None = None) -> None:
        store = self.store
        with store.hold():  # no other process (or machine) refreshes this chain meanwhile
            stored = store.load()  # this chain's record: a store keeps chains apart
            # Another process (or an earlier run) may hold a newer, still valid access token.
            if stored and stored.get("access_token") and stored.get("access_token") != stale:
                expires_at = _number(stored.get("expires_at"))
                if self._valid(expires_at):
                    self._access_token = str(stored["access_token"])
                    register_secret(self._access_token)
                    self._expires_at = expires_at
                    return
            refresh_token = stored["refresh_token"] if stored else self._configured_refresh
            if refresh_token == rejected:
                raise InvalidGrant(self._invalid_grant)
            register_secret(refresh_token)
            store.prepare()  # a store that cannot take the new token fails before it is spent
            with signals_deferred():  # once Close rotates the token, it must reach the store
                self._spending = refresh_token
                body = self._token_request(refresh_token)
                record = token_record(self.client_id, self._seed, body, refresh_token)
                register_secret(record["refresh_token"])
                register_secret(record["access_token"])
                store.save_durably(record)
            self._access_token = record["access_token"]
            self._expires_at = record["expires_at"]
            self.refresh_count += 1
            logger.info("OAuth access token refreshed; rotated refresh token saved to %s", store)

    def _token_request(self, refresh_token: str) -> dict[str, Any]:
        try:
            return self._post_grant(refresh_token)
        except InvalidGrant as exc:
            self._invalid_grant = str(exc)
            raise

    def _post_grant(self, refresh_token: str) -> dict[str, Any]:
        data = {
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        }
        if self.scopes:
            data["scope"] = self.scopes
        return exchange(
            self._session, self.token_url, data, timeout=self.timeout, store=str(self.store)
        )


def _number(value: Any, default: float = 0.0) -> float:
    """A finite number from a reply or store field, else `default` (never an exception)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def token_record(client_id: str, seed: str, body: dict[str, Any], spent: str) -> dict[str, Any]:
    """What the store keeps after a grant; parsing cannot fail once Close has answered."""
    expires_in = _number(body.get("expires_in"), -1.0)
    if expires_in <= 0:
        logger.warning("The token endpoint gave no usable expires_in: assuming 3600 s.")
        expires_in = 3600.0
    return {
        "client_id": client_id,
        "seed": seed,
        "refresh_token": str(body.get("refresh_token") or spent),
        "access_token": str(body["access_token"]),
        # Refresh a little before expiry: 60 s, or a fifth of very short lifetimes.
        "expires_at": time.time() + expires_in - min(60.0, expires_in / 5),
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


MAX_TOKEN_REPLY = 256 << 10  # bytes: a token reply is a few hundred


def _read_capped(response: requests.Response) -> bytes | None:
    """The body, or None past MAX_TOKEN_REPLY bytes (refused before reading when the length
    says so)."""
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_TOKEN_REPLY:
        return None
    parts, size = [], 0
    for chunk in response.iter_content(1 << 14):
        size += len(chunk)
        if size > MAX_TOKEN_REPLY:
            return None
        parts.append(chunk)
    return b"".join(parts)


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _error_code(content: bytes) -> str:
    """The token endpoint's error code, only if it looks like a code (never free text)."""
    body = _json(content)
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, str) and re.fullmatch(r"[a-z_]{1,40}", err) else ""


def exchange(
    session: requests.Session,
    token_url: str,
    data: dict[str, str],
    *,
    timeout: float = 60.0,
    store: str | None = None,
    tries: int = 4,
) -> dict[str, Any]:
    """POST a grant to the token endpoint; retry transient failures, explain fatal ones."""
    where = f" (token store: {store})" if store else ""
    for attempt in range(1, tries + 1):
        try:
            # Never redirected (the form holds client_secret and refresh_token); 10 s to connect.
            with session.post(token_url, data=data, timeout=(10.0, timeout), stream=True,
                              allow_redirects=False, proxies=direct(token_url)) as response:
                content = _read_capped(response)
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
        if content is None:
            raise AuthError(f"OAuth token endpoint sent a reply over {MAX_TOKEN_REPLY >> 10} KiB.")
        code = _error_code(content) if response.status_code >= 400 else ""
        if code == "invalid_grant":
            raise InvalidGrant(
                "OAuth refresh_token was rejected (invalid_grant): it was already used, revoked "
                "or expired. Re-authorize with `tap-close-auth` and set the new refresh_token"
                f"{where}."
            )
        if response.status_code in (400, 401) and code in ("invalid_client", "unauthorized_client"):
            msg = f"OAuth client_id/client_secret were rejected ({code})."
            raise AuthError(msg)
        if response.status_code >= 400:
            msg = f"OAuth token request failed with HTTP {response.status_code} {code}".rstrip()
            raise AuthError(msg + ".")
        body = _json(content)
        if not isinstance(body, dict) or not body.get("access_token"):
            msg = "OAuth token endpoint returned no access_token."
            raise AuthError(msg)
        return body
    raise AuthError("OAuth token request failed.")  # pragma: no cover
