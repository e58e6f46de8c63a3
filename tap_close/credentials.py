"""What the authenticators and the token stores share: the credential error, the register of
secrets that no output may carry, and one-way fingerprints (no other tap module imported)."""

from __future__ import annotations

import base64
import hashlib
import threading


class AuthError(Exception):
    """A credential problem the user must fix; the message never holds a secret."""


class InvalidGrant(AuthError):
    """The token endpoint refused the refresh token (spent, revoked or expired)."""


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


def fingerprint(secret: str) -> str:
    """Return a short one-way fingerprint of a secret (safe to store and compare)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]
