"""Token stores: where the newest refresh token of an OAuth chain lives between runs.

`token_store` is a URL: `file:///path` (the default, a local file), `postgresql://...?table=`
(needs the `postgres` extra) or `s3://bucket/key?endpoint_url=` (needs the `s3` extra).
"""

from __future__ import annotations

from pathlib import Path

from tap_close.credentials import AuthError, fingerprint
from tap_close.stores.base import TokenStore
from tap_close.stores.file import FileStore, default_path, legacy_default_path
from tap_close.stores.urls import SCHEMES, check_store_url, file_path, url_scheme

__all__ = ["SCHEMES", "TokenStore", "check_store_url", "open_store", "url_scheme"]

def open_store(
    *, client_id: str, refresh_token: str, url: str | None = None, path: str | None = None,
) -> TokenStore:
    """The store of the chain that `refresh_token` started: `url` (token_store), else `path`
    (token_store_path), else the default file for this client id and chain."""
    seed = fingerprint(refresh_token)
    if url:
        scheme, setting = url_scheme(url), "token_store"
        if scheme == "file":
            return FileStore(file_path(url, setting), client_id=client_id, seed=seed,
                             setting=setting)
        if scheme in ("postgresql", "postgres"):
            from tap_close.stores.postgres import PostgresStore  # noqa: PLC0415 - optional

            return PostgresStore(url, client_id=client_id, seed=seed, setting=setting)
        if scheme == "s3":
            from tap_close.stores.s3 import S3Store  # noqa: PLC0415 - boto3 loads slowly

            return S3Store(url, client_id=client_id, seed=seed, setting=setting)
        raise AuthError("token_store must be a file://, postgresql:// or s3:// URL")
    if path:
        return FileStore(Path(path), client_id=client_id, seed=seed)
    return FileStore(default_path(client_id, seed), client_id=client_id, seed=seed,
                     legacy=legacy_default_path(client_id))

