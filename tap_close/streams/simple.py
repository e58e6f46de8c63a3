"""Plain full-table list streams, declared in one line each."""

from __future__ import annotations

from tap_close.streams.base import CloseStream
from tap_close.streams.changes import EventReplay


def list_stream(
    name: str,
    path: str,
    schema: dict,
    *,
    events: tuple[str, ...] = (),
    key: str = "id",
    page_size: int = 100,
    params: dict[str, str] | None = None,
) -> type[CloseStream]:
    """A full-table stream over a `_skip`/`_limit` list; `events` = its deletable object types."""
    attrs = {
        "name": name,
        "path": path,
        "static_schema": schema,
        "primary_keys": (key,),
        "page_size": page_size,
        "event_object_types": events,
        "list_params": params or {},
        "__doc__": f"`GET {path}` (full table).",
    }
    bases: tuple[type, ...] = (EventReplay, CloseStream) if events else (CloseStream,)
    title = "".join(part.title() for part in name.split("_"))
    return type(f"{title}Stream", bases, attrs)
