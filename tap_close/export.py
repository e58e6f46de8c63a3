"""Close's Export API as a fast first load of leads: one gzipped JSON file, streamed."""

from __future__ import annotations

import codecs
import json
import logging
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import requests

from tap_close.client import CloseClient, id_path
from tap_close.errors import CloseAPIError

logger = logging.getLogger("tap-close.export")
CHUNK = 1 << 16


class ExportError(Exception):
    """The export could not be produced or read; the caller falls back to paging."""


def run_export(client: CloseClient, timeout: float = 4 * 3600) -> Iterator[dict[str, Any]]:
    """Request a JSON lead export, wait for it, and yield its leads one by one."""
    export = client.post("/export/lead/", {"format": "json", "type": "leads",
                                           "send_done_email": False})
    export_id = export.get("id")
    if not export_id:
        raise ExportError("Close returned no export id")
    deadline = time.monotonic() + timeout
    delay = 1.0
    while export.get("status") != "done":
        if export.get("status") == "error":
            raise ExportError(f"export {export_id} failed in Close")
        if time.monotonic() > deadline:
            raise ExportError(f"export {export_id} not done after {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 30.0)
        export = client.get(id_path("/export/", export_id))
    logger.info("Export %s done (%s leads); streaming it", export_id, export.get("n_docs"))
    yield from _download(client, export_id, export.get("download_url"))


def _download(client: CloseClient, export_id: str, url: Any) -> Iterator[dict[str, Any]]:
    for attempt in range(3):
        if attempt:  # download links are short-lived: ask for a fresh one
            url = client.get(id_path("/export/", export_id)).get("download_url")
        if not isinstance(url, str) or not url:
            raise ExportError("the finished export has no download_url")
        try:
            # A plain GET: the link is pre-signed, and our credentials must not leave Close.
            with requests.get(url, stream=True, timeout=client.timeout) as response:
                response.raise_for_status()
                yield from iter_json_values(_text(response.iter_content(CHUNK)))
                return
        except (requests.RequestException, EOFError, OSError) as exc:
            logger.warning("Export download failed (%s); retrying", type(exc).__name__)
    raise ExportError("the export download kept failing")


def _text(chunks: Iterator[bytes]) -> Iterator[str]:
    """Text of a body that may still be gzipped (when no Content-Encoding was set)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    inflate: Any = None
    for chunk in chunks:
        if inflate is None:
            gzipped = chunk[:2] == b"\x1f\x8b"
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else False
        data = inflate.decompress(chunk) if inflate else chunk
        if data:
            yield decoder.decode(data)
    yield decoder.decode(b"", final=True)


def iter_json_values(chunks: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Objects of a JSON array or of JSON lines, read incrementally (flat memory)."""
    decoder = json.JSONDecoder()
    text = iter(chunks)
    buf, pos, eof = "", 0, False
    in_array = None
    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n,":
            pos += 1
        if in_array is None and pos < len(buf):
            in_array = buf[pos] == "["
            pos += in_array
            continue
        if pos < len(buf) and buf[pos] == "]" and in_array:
            return
        if pos < len(buf):
            try:
                value, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError:
                if eof:
                    raise ExportError("the export file is not valid JSON") from None
            else:
                # An object is complete once decoded; a bare number at the end may not be.
                if isinstance(value, dict) or end < len(buf) or eof:
                    if isinstance(value, dict):
                        yield value
                    pos = end
                    continue
        if eof:
            if in_array:
                raise ExportError("the export file ended inside its JSON array")
            return
        chunk = next(text, None)
        eof = chunk is None
        chunk = chunk or ""
        buf, pos = buf[pos:] + chunk, 0


__all__ = ["CloseAPIError", "ExportError", "iter_json_values", "run_export"]
