"""Telephony and accounts: phone numbers, dialers, connected accounts, send-as, scheduling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tap_close import schemas
from tap_close.streams.base import CloseStream
from tap_close.streams.changes import EventReplay
from tap_close.streams.simple import list_stream

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

class SendAsStream(EventReplay, CloseStream):
    """Send-as associations involving the credential's user, in both directions.

    Close lists only associations where the caller is the allowing or the allowed user.
    """

    name = "send_as"
    path = "/send_as/"
    static_schema = schemas.SEND_AS
    event_object_types = ("send_as",)

    def read_records(self, context: Context | None) -> Iterator[Any]:
        me = self._tap.me()["id"]
        seen: set[str] = set()
        for side in ("allowing_user_id", "allowed_user_id"):
            for page in self.client.pages(self.path, {side: me}):
                for row in page:
                    if row["id"] not in seen:
                        seen.add(row["id"])
                        yield row
        yield from self.replay(context)


class SchedulingLinksStream(EventReplay, CloseStream):
    """The user's scheduling links (`/scheduling_link/`) and the organization's shared ones
    (`/shared_scheduling_link/`, a separate list)."""

    name = "scheduling_links"
    path = "/scheduling_link/"
    static_schema = schemas.SCHEDULING_LINK
    event_object_types = ("scheduling_link", "shared_scheduling_link")
    id_prefixes = ("schlnk_",)

    def read_records(self, context: Context | None) -> Iterator[Any]:
        seen: set[str] = set()
        for path in (self.path, "/shared_scheduling_link/"):
            for page in self.client.pages(path, page_size=self.page_size):
                for row in page:
                    if row["id"] not in seen:
                        seen.add(row["id"])
                        yield row
        yield from self.replay(context)


TELEPHONY_STREAMS: list[type[CloseStream]] = [
    list_stream("phone_numbers", "/phone_number/", schemas.PHONE_NUMBER,
                events=("phone_number",)),
    list_stream("blocked_phone_numbers", "/blocked_phone_number/",
                schemas.BLOCKED_PHONE_NUMBER, events=("blocked_phone_number",)),
    list_stream("connected_accounts", "/connected_account/", schemas.CONNECTED_ACCOUNT),
    list_stream("dialers", "/dialer/", schemas.DIALER),
    SendAsStream,
    SchedulingLinksStream,
]
