"""OAuth 2.0 token logic: single-use (rotating) refresh tokens, auth codes, access tokens."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any


class OAuthError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class TokenStore:
    """All token state behind one lock, so concurrent refreshes of one token: exactly one wins."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        access_token_ttl: float,
        organization_id: str,
        user_id: str,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.ttl = float(access_token_ttl)
        self.organization_id = organization_id
        self.user_id = user_id
        self._lock = threading.Lock()
        self._refresh: set[str] = set()
        self._codes: dict[str, str | None] = {}  # code -> redirect_uri it was issued for
        self._access: dict[str, float] = {}  # token -> expiry (time.monotonic)
        # `expires_in` as sent (None: the lifetime in seconds); tests set e.g. "1h" to check
        # that an unparsable reply still gets its rotated token saved.
        self.expires_in_text: Any = None
        self.refreshes = 0
        self.code_grants = 0
        self.invalid_grants = 0

    def issue_refresh_token(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._refresh.add(token)
        return token

    def issue_auth_code(self, redirect_uri: str | None = None, code: str = "") -> str:
        code = code or secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = redirect_uri
        return code

    def revoke(self, token: str) -> None:
        with self._lock:
            self._refresh.discard(token)
            self._access.pop(token, None)

    @property
    def current_refresh_tokens(self) -> set[str]:
        with self._lock:
            return set(self._refresh)

    def access_status(self, token: str) -> str:
        """'ok', 'expired' or 'invalid'."""
        with self._lock:
            expiry = self._access.get(token)
        if expiry is None:
            return "invalid"
        return "ok" if time.monotonic() < expiry else "expired"

    def grant(self, form: dict[str, str]) -> dict[str, Any]:
        """Handle a POST /oauth2/token/ form; raise OAuthError on failure."""
        if form.get("client_id") != self.client_id or not secrets.compare_digest(
            form.get("client_secret", ""), self.client_secret
        ):
            raise OAuthError(401, "invalid_client")
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "refresh_token":
                token = form.get("refresh_token", "")
                if token not in self._refresh:
                    self.invalid_grants += 1
                    raise OAuthError(400, "invalid_grant")
                self._refresh.discard(token)  # rotation: single use
                self.refreshes += 1
            elif grant_type == "authorization_code":
                code = form.get("code", "")
                if code not in self._codes:
                    self.invalid_grants += 1
                    raise OAuthError(400, "invalid_grant")
                expected = self._codes[code]
                given = form.get("redirect_uri")
                if expected and given and expected != given:
                    self.invalid_grants += 1
                    raise OAuthError(400, "invalid_grant")
                del self._codes[code]
                self.code_grants += 1
            else:
                raise OAuthError(400, "unsupported_grant_type")
            access = secrets.token_urlsafe(32)
            refresh = secrets.token_urlsafe(32)
            self._access[access] = time.monotonic() + self.ttl
            self._refresh.add(refresh)
        expires: float | int = int(self.ttl) if self.ttl.is_integer() else self.ttl
        return {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": expires if self.expires_in_text is None else self.expires_in_text,
            "refresh_token": refresh,
            "scope": "all.full_access offline_access",
            "organization_id": self.organization_id,
            "user_id": self.user_id,
        }
