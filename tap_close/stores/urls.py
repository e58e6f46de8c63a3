"""Reading a `token_store` URL, without the optional drivers: checked with the other settings
at start-up, and never echoed (a database password may sit in it)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from tap_close.credentials import AuthError, register_secret
from tap_close.urls import is_loopback, url_problem

SCHEMES = ("file", "postgresql", "postgres", "s3")
WEAK_SSL = ("disable", "allow", "prefer")  # may talk in clear (libpq's default: prefer)


def url_scheme(url: str) -> str:
    return urlsplit(url.strip()).scheme.lower()


def file_path(url: str, setting: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path or parts.query or parts.fragment:
        raise AuthError(f"{setting}: a file store is file:///absolute/path.json")
    return unquote(parts.path)


@dataclass
class PostgresURL:
    conninfo: str  # for libpq: holds the password
    table: str
    location: str  # printable


def postgres_url(url: str, setting: str, default_table: str = "tap_close_tokens") -> PostgresURL:
    """Parse inside a guard: a `/`, `?`, `#` or `@` left raw in a password moves the URL's
    parts (the password read as the port, or printed as the database), so such a URL is
    refused with an error that repeats none of it."""
    unreadable = AuthError(
        f"{setting}: the postgresql:// URL cannot be read. Percent-encode special characters "
        "in the user name and password (/ as %2F, ? as %3F, # as %23, @ as %40, : as %3A, "
        "% as %25), or leave the password out of the URL and use PGPASSWORD or ~/.pgpass.")
    try:
        parts = urlsplit(url)
        port, host, password = parts.port, parts.hostname, parts.password
        query = dict(parse_qsl(parts.query, strict_parsing=bool(parts.query)))
    except ValueError:
        raise unreadable from None
    if "#" in url or parts.netloc.count("@") > 1 or "@" in parts.path + parts.query:
        raise unreadable
    for secret in (password, query.get("password")):
        register_secret(secret)
        register_secret(unquote(secret or ""))
    table = query.pop("table", default_table)
    names = table.split(".")
    if not table or len(names) > 2 or not all(names):
        raise AuthError(f"{setting}: the `table` parameter must be a table or schema.table name")
    server = query.get("host") or host or ""
    local = not server or server.startswith("/") or all(
        is_loopback(h) for h in server.split(","))
    if not local:  # the password and the tokens cross a network: verified TLS only
        mode = query.setdefault("sslmode", "verify-full")
        if mode in WEAK_SSL:
            raise AuthError(f"{setting}: sslmode={mode} may send the password and tokens in "
                            "clear to a host that is not loopback; use sslmode=verify-full "
                            "(the default), verify-ca or require")
        if mode == "verify-full":
            query.setdefault("sslrootcert", "system")  # the system's CAs (libpq 16+)
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query)))
    user = f"{parts.username}@" if parts.username else ""
    location = f"postgresql://{user}{host or 'localhost'}:{port or 5432}{parts.path}?table={table}"
    return PostgresURL(conninfo, table, location)


@dataclass
class S3URL:
    bucket: str
    key: str
    endpoint: str | None
    region: str | None
    location: str


def s3_url(url: str, setting: str) -> S3URL:
    usage = AuthError(f"{setting}: an s3:// token store is s3://bucket/path/file.json, with the "
                      "optional parameters endpoint_url and region")
    try:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
    except ValueError:
        raise usage from None
    bucket, key = parts.netloc, parts.path.lstrip("/")
    endpoint, region = query.pop("endpoint_url", None), query.pop("region", None)
    if not bucket or not key or key.endswith("/") or query or parts.fragment or "@" in bucket:
        raise usage
    if endpoint:
        problem = url_problem(endpoint, "the endpoint_url of an s3:// token store")
        if problem:
            raise AuthError(f"{setting}: {problem}")
    where = f" at {urlsplit(endpoint).netloc}" if endpoint else ""
    return S3URL(bucket, key, endpoint, region, f"s3://{bucket}/{key}{where}")


def check_store_url(url: str, setting: str = "token_store") -> None:
    """AuthError (naming nothing from the URL) unless `url` is a usable token store URL."""
    scheme = url_scheme(url)
    if scheme == "file":
        file_path(url, setting)
    elif scheme in ("postgresql", "postgres"):
        postgres_url(url, setting)
    elif scheme == "s3":
        s3_url(url, setting)
    else:
        raise AuthError(f"{setting} must be a file://, postgresql:// or s3:// URL")
