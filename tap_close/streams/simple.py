"""Plain full-table list streams, declared in one line each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tap_close.streams.base import CloseStream
from tap_close.streams.changes import EventReplay

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class SharedList(CloseStream):
    """A small list other streams read too (`tap.listing`): one read per run for all."""

    def read_records(self, context: Context | None) -> Iterator[Any]:
        yield from (dict(row) for row in self._tap.listing(self.path, self.page_size))


def list_stream(
    name: str,
    path: str,
    schema: dict,
    *,
    events: tuple[str, ...] = (),
    key: str = "id",
    page_size: int = 100,
    params: dict[str, str] | None = None,
    shared: bool = False,
) -> type[CloseStream]:
    """A full-table stream over a `_skip`/`_limit` list; `events` = its deletable object types;
    `shared`: other streams read the list too (`SharedList`)."""
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
    if shared:
        bases = (*bases[:-1], SharedList)
    title = "".join(part.title() for part in name.split("_"))
    return type(f"{title}Stream", bases, attrs)
