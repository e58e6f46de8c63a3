"""Activities, one schema per type; all share ACTIVITY_BASE and can be deleted in Close.

Custom activities also carry ``custom.cf_*`` values, which the tap adds at run time.
"""

from __future__ import annotations

from singer_sdk import typing as th

from tap_close.schemas.common import (
    ATTACHMENT,
    CUSTOM_FIELD_PROPERTIES,
    EMAIL_ADDRESS,
    FREE_FORM,
    ID,
    JSONDict,
    _array,
    _booleans,
    _cents,
    _datetimes,
    _strings,
    _undocumented,
    audit,
    deletable,
)

ACTIVITY_BASE: tuple[th.Property, ...] = (
    ID,
    *_strings("_type", "lead_id", "contact_id", "user_id", "user_name"),
    _array("users", th.StringType),
    th.Property("activity_at", th.DateTimeType, description="When it happened."),
    *audit(),
)


def activity(*own: th.Property) -> JSONDict:
    """Stream schema of one activity type: the base properties, the type's own, tombstone."""
    return deletable(th.PropertiesList(*ACTIVITY_BASE, *own).to_dict())


# -- Fragments --------------------------------------------------------------------------------

SEQUENCE_REF = tuple(_strings("sequence_id", "sequence_name", "sequence_subscription_id"))
AGENT = tuple(_strings("agent_config_id", "agent_action_reason"))  # AI agent actions
PHONES = tuple(  # calls, SMS
    _strings("local_phone", "local_phone_formatted", "local_country_iso")
    + _strings("remote_phone", "remote_phone_formatted", "remote_country_iso")
)
COST = th.Property("cost", th.StringType, description="US cents, as a string.")
ENVELOPE = th.ObjectType(
    *(_array(name, EMAIL_ADDRESS) for name in ("from", "sender", "to", "cc", "bcc", "reply_to")),
    *_strings("subject", "message_id", "in_reply_to"),
    th.Property("date", th.StringType, description="RFC 2822 date header, as sent."),
)
EMAIL_OPEN = th.ObjectType(
    *_strings("ip_address", "opened_by", "user_agent"),
    th.Property("opened_at", th.DateTimeType),
)
QUOTED_TEXT = th.ObjectType(*_strings("text"), th.Property("expand", th.BooleanType))
EMAIL_PROPERTIES: tuple[th.Property, ...] = (  # an email; also embedded in email threads
    *ACTIVITY_BASE,
    *_strings("subject", "body_text", "body_html", "body_preview", "status", "direction"),
    *_strings("sender", "in_reply_to_id", "thread_id", "email_account_id", "send_as_id"),
    *_strings("template_id", "template_name", "bulk_email_action_id", "opens_summary"),
    *(_array(name, th.StringType) for name in ("to", "cc", "bcc", "message_ids", "references")),
    _array("body_text_quoted", QUOTED_TEXT),
    th.Property("envelope", ENVELOPE),
    *_datetimes("date_sent", "date_scheduled"),
    _array("opens", EMAIL_OPEN),
    th.Property(
        "send_attempts",
        th.ArrayType(FREE_FORM),
        description="Failed send attempts; Close documents them as objects of strings.",
    ),
    _array("attachments", ATTACHMENT),
    *_booleans("has_reply", "need_smtp_credentials", "followup_sequence_add_cc_bcc"),
    *_strings("followup_sequence_id"),
    th.Property("followup_sequence_delay", th.IntegerType, description="Seconds."),
    *SEQUENCE_REF,
    *AGENT,
)
ATTENDEE = th.ObjectType(
    *_strings("email", "name", "contact_id", "user_id", "status"),
    th.Property("is_organizer", th.BooleanType),
)
CONFERENCE_LINK = th.ObjectType(*_strings("type", "url"))

# -- Stream schemas ---------------------------------------------------------------------------

CALL_ACTIVITY: JSONDict = activity(
    *_strings("call_method", "direction", "disposition", "status", "source", "phone"),
    *PHONES,
    th.Property("duration", th.IntegerType, description="Seconds."),
    COST,
    *_strings("recording_url", "voicemail_url"),
    th.Property("voicemail_duration", th.IntegerType, description="Seconds."),
    *_strings("note", "note_html", "outcome_id", "dialer_id", "dialer_saved_search_id"),
    *_strings("transferred_from", "transferred_to"),
    *_undocumented("recording_transcript", "voicemail_transcript"),  # only with _fields
    *SEQUENCE_REF,
)

EMAIL_ACTIVITY: JSONDict = deletable(th.PropertiesList(*EMAIL_PROPERTIES).to_dict())

EMAIL_THREAD_ACTIVITY: JSONDict = activity(
    *_strings("latest_normalized_subject"),
    th.Property("n_emails", th.IntegerType),
    _array("participants", EMAIL_ADDRESS),
    _array("emails", th.ObjectType(*EMAIL_PROPERTIES)),
)

NOTE_ACTIVITY: JSONDict = activity(
    *_strings("note", "note_html", "title", "source"),
    th.Property("pinned", th.BooleanType),
    th.Property("pinned_at", th.DateTimeType),
    _array("attachments", ATTACHMENT),
    *_undocumented("note_mentions"),
)

MEETING_ACTIVITY: JSONDict = activity(
    *_strings("title", "status", "location", "source", "note", "outcome_id", "outcome_reason"),
    *_datetimes("starts_at", "ends_at"),
    th.Property("duration", th.IntegerType, description="Seconds."),
    th.Property("actual_duration", th.IntegerType, description="Seconds."),
    _array("attendees", ATTENDEE),
    _array("conference_links", CONFERENCE_LINK),
    *_strings("calendar_event_link", "provider_calendar_event_id", "provider_calendar_type"),
    _array("calendar_event_uids", th.StringType),
    _array("provider_calendar_ids", th.StringType),
    *_strings("connected_account_id", "notetaker_id", "playbook_id", "playbook_reason"),
    *_strings("conversation_type_id", "conversation_type_reason"),
    th.Property("is_recurring", th.BooleanType),
    *_strings("user_note", "user_note_html"),
    th.Property("user_note_date_updated", th.DateTimeType),
    _array("attached_call_ids", th.StringType),
    *_strings("outcome_autofill_reasoning"),
    *_undocumented("outcome_autofill_confidence", "summary", "user_note_mentions"),
    *_undocumented("integrations", "transcripts"),  # transcripts: only with _fields
)

SMS_ACTIVITY: JSONDict = activity(
    *_strings("text", "status", "direction", "source", "error_message", "template_id"),
    *PHONES,
    COST,
    *_datetimes("date_sent", "date_scheduled"),
    _array("attachments", ATTACHMENT),  # MMS
    *SEQUENCE_REF,
    *AGENT,
)

WHATSAPP_MESSAGE_ACTIVITY: JSONDict = activity(
    *_strings("external_whatsapp_message_id", "message_markdown", "message_html", "text"),
    *_strings("direction", "source", "response_to_id", "integration_link", "integration_name"),
    *_strings("local_phone", "local_phone_formatted", "remote_phone", "remote_phone_formatted"),
    _array("attachments", ATTACHMENT),
    *SEQUENCE_REF,
)

CREATED_ACTIVITY: JSONDict = activity(*_strings("source", "import_id"))

IMPORT_UPDATE_ACTIVITY: JSONDict = activity(
    *_strings("import_id"),
    th.Property("reverted", th.BooleanType),
)

LEAD_STATUS_CHANGE_ACTIVITY: JSONDict = activity(
    *_strings("old_status_id", "old_status_label", "new_status_id", "new_status_label"),
)

OPPORTUNITY_STATUS_CHANGE_ACTIVITY: JSONDict = activity(
    *_strings("opportunity_id"),
    *(
        prop
        for side in ("old", "new")
        for prop in _strings(
            f"{side}_status_id",
            f"{side}_status_label",
            f"{side}_status_type",
            f"{side}_pipeline_id",
            f"{side}_pipeline_name",
        )
    ),
    *_cents("opportunity_value"),
    *_strings("opportunity_value_currency", "opportunity_value_formatted"),
    *_strings("opportunity_value_period"),
    th.Property("opportunity_confidence", th.IntegerType, description="Percent, 0-100."),
    th.Property(
        "opportunity_date_won",
        th.StringType,
        description="Date or date-time (Close's example: a midnight UTC date-time).",
    ),
)

TASK_COMPLETED_ACTIVITY: JSONDict = activity(
    *_strings("task_id", "task_text", "task_assigned_to", "task_assigned_to_name"),
)

LEAD_MERGE_ACTIVITY: JSONDict = activity(
    *_strings("merge_status", "error_message"),
    *_strings("source_lead_id", "source_display_name"),
    *_strings("destination_lead_id", "destination_display_name"),
)

FORM_SUBMISSION_ACTIVITY: JSONDict = activity(
    *_strings("form_id", "form_configuration_id", "form_name", "ip_address", "origin"),
    *_strings("source_url", "source_url_normalized"),
    th.Property("values", FREE_FORM, description="Submitted values by form field id."),
    th.Property("values_by_name", FREE_FORM, description="Submitted values by field name."),
)

CUSTOM_ACTIVITY: JSONDict = activity(  # an instance; its custom.cf_* values come from the tap
    *_strings("custom_activity_type_id", "status", "source"),
    th.Property("pinned", th.BooleanType),
    *_datetimes("pinned_at", "last_published_at", "mentions_updated_at"),
    *_undocumented("mentions"),
)

# The custom activity types (definitions), with their fields embedded. Dates come naive (UTC).
CUSTOM_ACTIVITY_TYPE: JSONDict = deletable(
    th.PropertiesList(
        ID,
        *_strings("name", "description"),
        *_booleans("api_create_only", "is_archived"),
        _array("editable_with_roles", th.StringType),
        _array("fields", th.ObjectType(*CUSTOM_FIELD_PROPERTIES)),
        *audit(),
    ).to_dict()
)

# Activity schema per Close ``_type`` (custom activities: "CustomActivity").
ACTIVITY_TYPES: dict[str, JSONDict] = {
    "Call": CALL_ACTIVITY,
    "Email": EMAIL_ACTIVITY,
    "EmailThread": EMAIL_THREAD_ACTIVITY,
    "Note": NOTE_ACTIVITY,
    "Meeting": MEETING_ACTIVITY,
    "SMS": SMS_ACTIVITY,
    "WhatsAppMessage": WHATSAPP_MESSAGE_ACTIVITY,
    "Created": CREATED_ACTIVITY,
    "ImportUpdate": IMPORT_UPDATE_ACTIVITY,
    "LeadStatusChange": LEAD_STATUS_CHANGE_ACTIVITY,
    "OpportunityStatusChange": OPPORTUNITY_STATUS_CHANGE_ACTIVITY,
    "TaskCompleted": TASK_COMPLETED_ACTIVITY,
    "LeadMerge": LEAD_MERGE_ACTIVITY,
    "FormSubmission": FORM_SUBMISSION_ACTIVITY,
    "CustomActivity": CUSTOM_ACTIVITY,
}
