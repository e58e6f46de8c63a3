"""Collaboration and integrations: comment threads, comments, integration links, webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tap_close import schemas
from tap_close.streams.base import CloseStream
from tap_close.streams.changes import EventReplay
from tap_close.streams.simple import list_stream

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

CommentThreadsStream = list_stream("comment_threads", "/comment_thread/", schemas.COMMENT_THREAD,
                                   shared=True)
IntegrationLinksStream = list_stream("integration_links", "/integration_link/",
                                     schemas.INTEGRATION_LINK, events=("integration_link",))


class CommentsStream(EventReplay, CloseStream):
    """`/comment/` needs a `thread_id`: one listing per comment thread that has comments."""

    name = "comments"
    path = "/comment/"
    static_schema = schemas.COMMENT
    event_object_types = ("comment",)

    def read_records(self, context: Context | None) -> Iterator[Any]:
        for thread in self._tap.listing("/comment_thread/"):
            if thread.get("num_comments") == 0:
                continue
            params = {"thread_id": thread["id"]}
            for page in self.client.pages(self.path, params, page_size=self.page_size):
                yield from page
        yield from self.replay(context)


#: Fields that hold a secret (a webhook's signing key): never emitted, in objects or events.
SECRET_FIELDS = ("signature_key",)


def strip_secrets(row: Any) -> Any:
    """`row` without its secret fields (a non-dict is returned as it is)."""
    if isinstance(row, dict):
        for field in SECRET_FIELDS:
            row.pop(field, None)
    return row


class WebhooksStream(EventReplay, CloseStream):
    """Webhook subscriptions. `signature_key` is a secret: it is never emitted."""

    name = "webhooks"
    path = "/webhook/"
    static_schema = schemas.WEBHOOK
    event_object_types = ("webhook",)

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        return super().post_process(strip_secrets(row), context)


COLLABORATION_STREAMS: list[type[CloseStream]] = [
    CommentThreadsStream, CommentsStream, IntegrationLinksStream, WebhooksStream,
]
