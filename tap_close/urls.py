"""The rules for the URLs credentials are sent to (api_url, oauth_token_url, store endpoints):
https, or plain http to a loopback host only, parsed as `requests` parses them."""

from __future__ import annotations

import ipaddress

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_problem(url: str, name: str) -> str | None:
    """Why `url` must not receive credentials (None: it may). Checked with urllib3's parser,
    the one `requests` sends with, so that no other reading of the URL can pass here; a
    backslash, user info or fragment (which parsers read differently) is refused."""
    if "\\" in url or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return f"{name} must not contain backslashes, spaces or control characters"
    try:
        parts = parse_url(url)
    except (LocationParseError, ValueError):
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.host:
        return f"{name} must be an http(s) URL"
    if parts.auth is not None or "@" in (parts.netloc or "") or parts.fragment is not None:
        return f"{name} must not contain user info (user:password@) or a #fragment"
    if parts.scheme == "http" and not is_loopback(parts.host):
        return f"{name} must use https (plain http only to a loopback host such as 127.0.0.1)"
    return None


def host_of(url: str) -> str:
    return (parse_url(url).host or "").strip("[]")


def direct(url: str) -> dict[str, str]:
    """`proxies` for a request to `url`: plain http (loopback only) never goes through a
    proxy, which would see the credentials in clear; https follows the environment."""
    return {"no_proxy": "*"} if parse_url(url).scheme == "http" else {}
