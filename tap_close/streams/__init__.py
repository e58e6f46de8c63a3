"""Close streams, grouped by Close domain."""

from tap_close.streams.crm import ContactsStream, LeadsStream, OpportunitiesStream
from tap_close.streams.org import (
    ContactCustomFieldsStream,
    LeadCustomFieldsStream,
    LeadStatusesStream,
    OpportunityCustomFieldsStream,
    OpportunityStatusesStream,
    PipelinesStream,
    UsersStream,
)

STREAM_TYPES = [
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
]

__all__ = ["STREAM_TYPES"]
