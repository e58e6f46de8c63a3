"""The token store in an S3(-compatible) object, shared without a lock server.

A refresh first claims a short lease in the object itself by compare-and-swap (a conditional
write: `If-Match` on the ETag read, `If-None-Match: *` when there is no object yet). A process
that loses the race re-reads the object, waits for the lease to end and adopts the winner's
token; the winner's save is conditional on its own lease's ETag.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

from tap_close.credentials import AuthError
from tap_close.stores.base import TokenStore, chains_of, document, missing_extra
from tap_close.stores.urls import s3_url

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # the `s3` extra
    boto3 = None

logger = logging.getLogger("tap-close.auth")

#: How long a claim holds: longer than a token request with all its retries (4 x 60 s).
LEASE_SECONDS = 300.0
LOST_RACE = {"PreconditionFailed", "ConditionalRequestConflict"}
NO_SUCH_ETAG = '"00000000000000000000000000000000"'  # matches no object


class S3Store(TokenStore):
    def __init__(self, url: str, *, client_id: str, seed: str, setting: str) -> None:
        if boto3 is None:
            raise missing_extra(setting, "s3", "s3")
        parsed = s3_url(url, setting)
        self.bucket, self.key = parsed.bucket, parsed.key
        endpoint, region = parsed.endpoint, parsed.region
        config = Config(connect_timeout=10, read_timeout=30,
                        retries={"max_attempts": 3, "mode": "standard"})
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name=region, config=config)
        super().__init__(setting=setting, location=parsed.location, client_id=client_id,
                         seed=seed)
        self.holder = uuid.uuid4().hex
        self._record: dict[str, Any] | None = None  # the document as claimed, lease aside
        self._etag: str | None = None
        self._saved = False
        self._probed = False  # conditional writes checked

    def _get(self) -> tuple[dict[str, Any] | None, str | None]:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self.key)
            body = reply["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            if code in ("NoSuchKey", "404"):
                return None, None
            raise self.error(f"cannot read {self.location} ({code})") from None
        except BotoCoreError as exc:
            raise self.error(f"cannot reach {self.location} ({type(exc).__name__})") from None
        return self.parse(body, self.location, empty=True), reply["ETag"]

    def _put(self, data: dict[str, Any], etag: str | None) -> str | None:
        """Write if the object is still at `etag` (absent if None); the new ETag, or None if
        another process wrote first."""
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            reply = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=json.dumps(data).encode(),
                ContentType="application/json", **condition)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            if code in LOST_RACE or exc.response.get("ResponseMetadata", {}).get(
                    "HTTPStatusCode") in (409, 412):
                return None
            raise self.error(f"cannot write {self.location} ({code})") from None
        except BotoCoreError as exc:
            raise self.error(f"cannot reach {self.location} ({type(exc).__name__})") from None
        return str(reply["ETag"])

    def _probe(self) -> None:
        """Once per process: the endpoint must refuse a write whose `If-Match` fails. One that
        ignores it would let a process that lost the race write an old token over the
        winner's; it is refused before any token is spent."""
        data, _ = self._get()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key,
                                   Body=json.dumps(data or {}).encode(),
                                   ContentType="application/json", IfMatch=NO_SUCH_ETAG)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in LOST_RACE or status in (409, 412) or (data is None and status == 404):
                self._probed = True
                return
            raise self.error(f"cannot write {self.location} ({code})") from None
        except BotoCoreError as exc:
            raise self.error(f"cannot reach {self.location} ({type(exc).__name__})") from None
        raise self.error(f"{self.location}: the endpoint ignores conditional writes (If-Match),"
                         " so processes sharing it could write an old token over a newer one; "
                         "use a store that supports them (AWS S3, MinIO, R2, ...)")

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if not self._probed:
            self._probe()
        started, waiting = time.monotonic(), False
        while True:
            data, etag = self._get()
            lease = (data or {}).get("lease") or {}
            if lease.get("holder") not in (None, self.holder) and float(
                    lease.get("until") or 0) > time.time():
                if time.monotonic() - started > LEASE_SECONDS + 60:
                    raise self.error(f"{self.location} stays claimed by another process")
                if not waiting:
                    logger.info("Another process is refreshing the OAuth token in %s: waiting "
                                "for its token.", self.location)
                    waiting = True
                time.sleep(0.1 + random.random() * 0.2)
                continue
            record = {k: v for k, v in (data or {}).items() if k != "lease"}
            lease = {"holder": self.holder, "until": time.time() + LEASE_SECONDS}
            claimed = self._put({**record, "lease": lease}, etag)
            if claimed is not None:
                break
            logger.info("Another process claimed %s first: re-reading it.", self.location)
        self._record, self._etag, self._saved = record or None, claimed, False
        try:
            yield
        finally:
            if not self._saved:  # give the lease back (it also ends by itself)
                with contextlib.suppress(AuthError):
                    self._put(self._record or {}, self._etag)

    def load(self) -> dict[str, Any] | None:
        """This chain's record (the object may hold other chains too: see `OTHERS`)."""
        mine = chains_of(self._record, self.client_id).get(self.chain)
        return dict(mine) if mine else None

    def save(self, record: dict[str, Any]) -> None:
        data = document(chains_of(self._record, self.client_id), record)
        etag = self._put(data, self._etag)
        if etag is None:  # our lease ran out and was taken: this token is still the newest
            logger.warning("%s changed during the refresh; writing the rotated token over it.",
                           self.location)
            now, now_etag = self._get()
            data = document(chains_of(now, self.client_id), record)  # others as they are now
            etag = self._put(data, now_etag)
            if etag is None:
                raise self.error(f"{self.location} keeps changing; cannot write it")
        self._record, self._etag, self._saved = data, etag, True
