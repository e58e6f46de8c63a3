"""Leads and what hangs off them: contacts, opportunities, tasks, custom objects, events.

Custom field values (``custom.cf_*``) are not declared here: the tap adds them at run time.
"""

from __future__ import annotations

from singer_sdk import typing as th

from tap_close.schemas.common import (
    ATTACHMENT,
    FREE_FORM,
    ID,
    JSONDict,
    _array,
    _booleans,
    _cents,
    _datetimes,
    _strings,
    audit,
    deletable,
)

# -- Fragments --------------------------------------------------------------------------------

ADDRESS = th.ObjectType(
    *_strings("label", "address_1", "address_2", "city", "state", "zipcode", "country"),
    _array("tz_ids", th.StringType),
)
EMAIL = th.ObjectType(*_strings("email", "type"), th.Property("is_unsubscribed", th.BooleanType))
PHONE = th.ObjectType(
    *_strings("phone", "phone_formatted", "type", "country"),
    _array("tz_ids", th.StringType),
    th.Property("outbound_sms_blocked", th.BooleanType),
    th.Property("is_unsubscribed", th.BooleanType),  # seen in Close's contact examples
)
URL = th.ObjectType(*_strings("url", "type"))
RENDERED_INTEGRATION_LINK = th.ObjectType(*_strings("name", "url"))  # on leads, contacts, ...
RECENT_CALL = th.ObjectType(
    ID,
    *_strings("status", "dialer_id"),
    th.Property("duration", th.IntegerType, description="Seconds."),
    th.Property("finish_timestamp", th.DateTimeType),
)
CONTACT_SUBSCRIPTION = th.ObjectType(  # a contact's sequence subscriptions
    *_strings("subscription_id", "subscription_status", "subscription_status_reason"),
    *_strings("sequence_id", "sequence_name", "sequence_status", "contact_email"),
    *_strings("initial_email_id"),
    *_datetimes("date_created", "start_date"),
)
STALL_STATUS = th.ObjectType(
    *_strings("communication_issue"),
    th.Property("next_action", th.ObjectType(*_strings("action", "justification"))),
)
SUGGESTED_ACTION = th.ObjectType(
    *_strings("action", "justification"),
    th.Property("details", FREE_FORM),
)
COMMENT_SUMMARY = th.ObjectType(
    *_strings("thread_id"),
    th.Property("comment_count", th.IntegerType),
)

# -- Objects embedded in others (custom fields excluded) ---------------------------------------

CONTACT_PROPERTIES: tuple[th.Property, ...] = (
    ID,
    *_strings("lead_id", "name", "display_name", "title"),
    *_strings("timezone", "timezone_source", "lead_suggestions_operation_id"),
    _array("emails", EMAIL),
    _array("phones", PHONE),
    _array("urls", URL),
    _array("integration_links", RENDERED_INTEGRATION_LINK),
    _array("recent_calls", RECENT_CALL),
    _array("subscriptions", CONTACT_SUBSCRIPTION),
    *audit(),
)
OPPORTUNITY_PROPERTIES: tuple[th.Property, ...] = (
    ID,
    *_strings("lead_id", "lead_name", "contact_id", "contact_name", "user_id", "user_name"),
    *_strings("status_id", "status_label", "status_type", "status_display_name"),
    *_strings("pipeline_id", "pipeline_name", "note", "note_html"),
    *_cents("value", "annualized_value", "expected_value", "annualized_expected_value"),
    *_strings("value_currency", "value_formatted", "value_period"),
    th.Property("confidence", th.IntegerType, description="Percent, 0-100."),
    th.Property("date_won", th.DateType),
    th.Property("date_lost", th.DateTimeType),
    th.Property("is_stalled", th.BooleanType),
    th.Property("stall_status", STALL_STATUS),
    th.Property("suggested_action", SUGGESTED_ACTION),
    th.Property("comment_summary", COMMENT_SUMMARY),
    th.Property("lead_primary_email", EMAIL),
    _array("lead_primary_phone", PHONE),
    _array("attachments", ATTACHMENT),
    _array("integration_links", RENDERED_INTEGRATION_LINK),
    *audit(),
)
# Every task type (lead, incoming_email, email_followup, missed_call, answered_detached_call,
# voicemail, opportunity_due, incoming_sms, outgoing_call); leads embed their open ones.
TASK_PROPERTIES: tuple[th.Property, ...] = (
    ID,
    *_strings("_type", "view", "text", "object_type", "object_id", "priority", "resolution"),
    *_strings("lead_id", "lead_name", "contact_id", "contact_name"),
    *_strings("assigned_to", "assigned_to_name", "agent_config_id", "deduplication_key"),
    th.Property("date", th.StringType, description="Date or date-time, depending on the task."),
    th.Property("due_date", th.StringType, description="Date or date-time."),
    *_booleans("is_complete", "is_dateless", "is_primary_lead_notification"),
    # calls, voicemails and SMS
    *_strings("phone", "phone_formatted", "phone_number_description", "local_phone"),
    *_strings("remote_phone", "remote_phone_formatted", "remote_phone_description"),
    *_strings("recording_url", "voicemail_url"),
    th.Property("voicemail_duration", th.IntegerType, description="Seconds."),
    _array("attachments", ATTACHMENT),
    # emails
    *_strings("email_id", "subject", "body_preview"),
    _array("emails", th.StringType),
    # opportunities
    *_strings("opportunity_note", "opportunity_value_currency", "opportunity_value_formatted"),
    *_strings("opportunity_value_period"),
    *_cents("opportunity_value"),
    # sequences
    *_strings("sequence_id", "sequence_subscription_id", "step_id"),
    *audit(),
)

# -- Stream schemas ---------------------------------------------------------------------------

LEAD: JSONDict = deletable(
    th.PropertiesList(
        ID,
        *_strings("name", "display_name", "description", "url", "html_url", "source"),
        *_strings("status_id", "status_label", "primary_address_summary", "contacts_summary"),
        th.Property("localtime", th.DateTimeType),
        _array("contact_ids", th.StringType),
        _array("contacts", th.ObjectType(*CONTACT_PROPERTIES)),
        _array("opportunities", th.ObjectType(*OPPORTUNITY_PROPERTIES)),
        _array("addresses", ADDRESS),
        _array("tasks", th.ObjectType(*TASK_PROPERTIES)),
        _array("integration_links", RENDERED_INTEGRATION_LINK),
        th.Property("primary_email", EMAIL),
        th.Property("primary_phone", PHONE),
        _array("recent_calls", RECENT_CALL),
        _array("summaries", FREE_FORM),
        *audit(),
    ).to_dict()
)

CONTACT: JSONDict = deletable(th.PropertiesList(*CONTACT_PROPERTIES).to_dict())

OPPORTUNITY: JSONDict = deletable(th.PropertiesList(*OPPORTUNITY_PROPERTIES).to_dict())

TASK: JSONDict = deletable(th.PropertiesList(*TASK_PROPERTIES).to_dict())

CUSTOM_OBJECT: JSONDict = deletable(  # an instance; its custom.cf_* values are added by the tap
    th.PropertiesList(
        ID,
        *_strings("name", "custom_object_type_id", "lead_id"),
        *audit(),
    ).to_dict()
)

# The event log. Close sends date_created/date_updated naive (UTC).
EVENT: JSONDict = th.PropertiesList(
    ID,
    *_datetimes("date_created", "date_updated"),
    *_strings("organization_id", "user_id", "request_id", "api_key_id"),
    *_strings("object_type", "object_id", "lead_id", "action"),
    _array("changed_fields", th.StringType),
    th.Property(
        "data", FREE_FORM, description="The object as the API returns it; null for deletes."
    ),
    th.Property(
        "previous_data",
        FREE_FORM,
        description="Updates: old values of the changed fields; deletes: the deleted object.",
    ),
    th.Property(
        "meta",
        th.ObjectType(
            *_strings("request_method", "request_path", "bulk_action_id"),
            *_strings("merge_source_lead_id", "merge_destination_lead_id"),
        ),
    ),
).to_dict()
