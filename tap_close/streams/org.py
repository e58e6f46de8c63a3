"""Organisation set-up: users, statuses, pipelines and custom field definitions."""

from __future__ import annotations

from tap_close import schemas
from tap_close.streams.base import CloseStream


class UsersStream(CloseStream):
    name = "users"
    path = "/user/"
    static_schema = schemas.USER


class LeadStatusesStream(CloseStream):
    name = "lead_statuses"
    path = "/status/lead/"
    static_schema = schemas.LEAD_STATUS


class OpportunityStatusesStream(CloseStream):
    name = "opportunity_statuses"
    path = "/status/opportunity/"
    static_schema = schemas.OPPORTUNITY_STATUS


class PipelinesStream(CloseStream):
    name = "pipelines"
    path = "/pipeline/"
    static_schema = schemas.PIPELINE


class CustomFieldsStream(CloseStream):
    """Custom field definitions of one Close object type."""

    static_schema = schemas.CUSTOM_FIELD
    page_size = 1000


class LeadCustomFieldsStream(CustomFieldsStream):
    name = "lead_custom_fields"
    path = "/custom_field/lead/"


class ContactCustomFieldsStream(CustomFieldsStream):
    name = "contact_custom_fields"
    path = "/custom_field/contact/"


class OpportunityCustomFieldsStream(CustomFieldsStream):
    name = "opportunity_custom_fields"
    path = "/custom_field/opportunity/"
