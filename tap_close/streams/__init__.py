"""Close streams, grouped by Close domain."""

from singer_sdk.streams import Stream

from tap_close.streams.activities import (
    ACTIVITY_STREAMS,
    ActivityCustomFieldsStream,
    CustomActivityTypesStream,
    TasksStream,
)
from tap_close.streams.crm import ContactsStream, LeadsStream, OpportunitiesStream
from tap_close.streams.events import EventsStream
from tap_close.streams.org import (
    ContactCustomFieldsStream,
    LeadCustomFieldsStream,
    LeadStatusesStream,
    OpportunityCustomFieldsStream,
    OpportunityStatusesStream,
    PipelinesStream,
    UsersStream,
)

STREAM_TYPES: list[type[Stream]] = [
    LeadsStream,
    ContactsStream,
    OpportunitiesStream,
    UsersStream,
    LeadStatusesStream,
    OpportunityStatusesStream,
    PipelinesStream,
    LeadCustomFieldsStream,
    ContactCustomFieldsStream,
    OpportunityCustomFieldsStream,
    *ACTIVITY_STREAMS,
    CustomActivityTypesStream,
    ActivityCustomFieldsStream,
    TasksStream,
    EventsStream,
]

__all__ = ["STREAM_TYPES"]
