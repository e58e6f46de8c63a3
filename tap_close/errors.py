"""The errors of Close calls, shared by the HTTP client, the rate limiter and the streams."""

from __future__ import annotations


class TransportError(Exception):
    """The exchange failed on the wire (reset, timeout, truncated or malformed reply)."""


class Unreachable(TransportError):
    """No connection at all: the name does not resolve, or the host refuses it."""


class ReadTimeout(TransportError):
    """The server did not answer within `request_timeout`."""


class FatalTransportError(Exception):
    """A failure another try cannot fix (TLS rejected, unusable URL, oversized reply)."""


class CloseAPIError(Exception):
    """A fatal API error; the message names the path and Close's error text, no secrets."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CancelledRead(CloseAPIError):
    """A read ahead whose consumer has stopped: not sent (its result would be dropped)."""


class MaxSkipError(CloseAPIError):
    """Close refused a `_skip` past the resource's max_skip."""


class LimitTooLargeError(CloseAPIError):
    """Close refused the page size (`_limit`)."""


class AccessDeniedError(CloseAPIError):
    """403 (not allowed) or 402 (plan limit) for this endpoint."""
