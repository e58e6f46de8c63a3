"""Sales set-up and outreach: smart views, templates, sequences, outcomes, bulk actions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tap_close import schemas
from tap_close.streams.base import CloseStream
from tap_close.streams.simple import list_stream

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

SmartViewsStream = list_stream("smart_views", "/saved_search/", schemas.SMART_VIEW,
                               events=("saved_search",), params={"type__in": "lead,contact"})
EmailTemplatesStream = list_stream("email_templates", "/email_template/",
                                   schemas.EMAIL_TEMPLATE, events=("email_template",))
SmsTemplatesStream = list_stream("sms_templates", "/sms_template/", schemas.SMS_TEMPLATE,
                                 events=("sms_template",))
SequencesStream = list_stream("sequences", "/sequence/", schemas.SEQUENCE, events=("sequence",),
                              shared=True)
OutcomesStream = list_stream("outcomes", "/outcome/", schemas.OUTCOME, events=("outcome",))
EmailBulkActionsStream = list_stream("email_bulk_actions", "/bulk_action/email/",
                                     schemas.BULK_ACTION_EMAIL)
EditBulkActionsStream = list_stream("edit_bulk_actions", "/bulk_action/edit/",
                                    schemas.BULK_ACTION_EDIT)
DeleteBulkActionsStream = list_stream("delete_bulk_actions", "/bulk_action/delete/",
                                      schemas.BULK_ACTION_DELETE)
SequenceSubscriptionBulkActionsStream = list_stream(
    "sequence_subscription_bulk_actions", "/bulk_action/sequence_subscription/",
    schemas.BULK_ACTION_SEQUENCE_SUBSCRIPTION)
UnsubscribedEmailsStream = list_stream("unsubscribed_emails", "/unsubscribe/email/",
                                       schemas.UNSUBSCRIBED_EMAIL, key="email")


class SequenceSubscriptionsStream(CloseStream):
    """`/sequence_subscription/` needs a `sequence_id`: one listing per sequence."""

    name = "sequence_subscriptions"
    path = "/sequence_subscription/"
    static_schema = schemas.SEQUENCE_SUBSCRIPTION

    def read_records(self, context: Context | None) -> Iterator[Any]:
        for sequence in self._tap.listing("/sequence/"):
            params = {"sequence_id": sequence["id"]}
            for page in self.client.pages(self.path, params, page_size=self.page_size):
                yield from page


OUTREACH_STREAMS: list[type[CloseStream]] = [
    SmartViewsStream, EmailTemplatesStream, SmsTemplatesStream, SequencesStream,
    SequenceSubscriptionsStream, OutcomesStream, EmailBulkActionsStream, EditBulkActionsStream,
    DeleteBulkActionsStream, SequenceSubscriptionBulkActionsStream, UnsubscribedEmailsStream,
]
