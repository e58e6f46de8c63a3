"""Close streams, grouped by Close domain."""

from singer_sdk.streams import Stream

from tap_close.streams.activities import (
    ACTIVITY_STREAMS,
    ActivityCustomFieldsStream,
    CustomActivityTypesStream,
    TasksStream,
)
from tap_close.streams.collaboration import COLLABORATION_STREAMS
from tap_close.streams.crm import ContactsStream, LeadsStream, OpportunitiesStream
from tap_close.streams.custom_objects import CUSTOM_OBJECT_STREAMS
from tap_close.streams.events import EventsStream
from tap_close.streams.org import (
    ContactCustomFieldsStream,
    GroupsStream,
    LeadCustomFieldsStream,
    LeadStatusesStream,
    MembershipsStream,
    OpportunityCustomFieldsStream,
    OpportunityStatusesStream,
    OrganizationsStream,
    PipelinesStream,
    RolesStream,
    UsersStream,
)
from tap_close.streams.outreach import OUTREACH_STREAMS
from tap_close.streams.telephony import TELEPHONY_STREAMS

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
    OrganizationsStream,
    MembershipsStream,
    GroupsStream,
    RolesStream,
    *OUTREACH_STREAMS,
    *TELEPHONY_STREAMS,
    *CUSTOM_OBJECT_STREAMS,
    *COLLABORATION_STREAMS,
]

__all__ = ["STREAM_TYPES"]
