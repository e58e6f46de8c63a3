"""Outreach: smart views, templates, sequences and their subscriptions, bulk actions,
unsubscribed emails.
"""

from __future__ import annotations

from singer_sdk import typing as th

from tap_close.schemas.common import (
    ATTACHMENT,
    AUTHOR_IDS,
    FREE_FORM,
    ID,
    JSONDict,
    _array,
    _booleans,
    _datetimes,
    _integers,
    _strings,
    audit,
    deletable,
)

# -- Fragments --------------------------------------------------------------------------------

SHARING_SETTINGS = th.ObjectType(
    *_strings("created_by_id", "updated_by_id"),
    *_datetimes("created_at", "updated_at"),
    _array("user_ids", th.StringType),
    _array("group_ids", th.StringType),
    th.Property("whole_org", th.BooleanType),
)
SEQUENCE_STEP = th.ObjectType(
    ID,
    *_strings("step_type", "email_template_id", "sms_template_id", "threading"),
    th.Property("delay", th.IntegerType, description="Seconds after the previous step."),
    th.Property("step_allowed_delay", th.IntegerType, description="Seconds."),
    th.Property("required", th.BooleanType),
    *_datetimes("date_created", "date_updated"),
    *AUTHOR_IDS,
)
SUBSCRIPTION_COUNTS = th.ObjectType(*_integers("active", "paused", "finished", "error", "goal"))
BULK_ACTION_BASE: tuple[th.Property, ...] = (
    ID,
    *_strings("status", "query"),
    th.Property("s_query", FREE_FORM, description="Advanced Filtering query."),
    _array("sort", FREE_FORM),
    th.Property("results_limit", th.IntegerType),
    th.Property("send_done_email", th.BooleanType),
    *_integers("n_leads", "n_leads_processed", "n_objects", "n_objects_processed"),
    *audit(),
)

# -- Stream schemas ---------------------------------------------------------------------------

SMART_VIEW: JSONDict = deletable(  # saved_search
    th.PropertiesList(
        ID,
        *_strings("name", "description", "type", "query", "user_id"),
        th.Property("s_query", FREE_FORM, description="Advanced Filtering query."),
        *_booleans("is_shared", "is_user_dependent", "used_recently"),
        _array("selected_fields", FREE_FORM),
        _array("shared_with", th.StringType),
        th.Property("sharing_settings", SHARING_SETTINGS),
        *audit(),
    ).to_dict()
)

EMAIL_TEMPLATE: JSONDict = deletable(
    th.PropertiesList(
        ID,
        *_strings("name", "subject", "body"),
        *_booleans("is_shared", "is_archived"),
        _array("attachments", ATTACHMENT),
        _array("used_by_sequences", th.ObjectType(ID, *_strings("name"))),
        *audit(),
    ).to_dict()
)

SMS_TEMPLATE: JSONDict = deletable(  # dates come naive (UTC)
    th.PropertiesList(
        ID,
        *_strings("name", "text", "status", "owned_by"),
        th.Property("is_shared", th.BooleanType),
        _array("attachments", ATTACHMENT),
        *audit(),
    ).to_dict()
)

SEQUENCE: JSONDict = deletable(  # dates come naive (UTC)
    th.PropertiesList(
        ID,
        *_strings("name", "status", "timezone", "organization_id"),
        th.Property("schedule", FREE_FORM, description="Sending schedule; null: any time."),
        _array("steps", SEQUENCE_STEP),
        th.Property(
            "subscription_counts_by_status",
            SUBSCRIPTION_COUNTS,
            description="Only from GET /sequence/{id}/.",
        ),
        *_datetimes("date_created", "date_updated"),
        *AUTHOR_IDS,
    ).to_dict()
)

SEQUENCE_SUBSCRIPTION: JSONDict = th.PropertiesList(  # dates come naive (UTC)
    ID,
    *_strings("sequence_id", "contact_id", "lead_id", "contact_email", "organization_id"),
    *_strings("sender_account_id", "sender_email", "sender_name", "status", "status_reason"),
    _array("calls_assigned_to", th.StringType),
    *_datetimes("start_date", "date_created", "date_updated"),
    *AUTHOR_IDS,
).to_dict()

BULK_ACTION_EMAIL: JSONDict = th.PropertiesList(
    *BULK_ACTION_BASE,
    *_strings("contact_preference", "email_account_id", "sender", "template_id"),
).to_dict()

BULK_ACTION_EDIT: JSONDict = th.PropertiesList(
    *BULK_ACTION_BASE,
    *_strings("type", "lead_status_id", "custom_field_name", "custom_field_value"),
).to_dict()

BULK_ACTION_DELETE: JSONDict = th.PropertiesList(
    *BULK_ACTION_BASE,
    *_strings("bulk_object_type"),
).to_dict()

BULK_ACTION_SEQUENCE_SUBSCRIPTION: JSONDict = th.PropertiesList(
    *BULK_ACTION_BASE,
    *_strings("action_type", "contact_preference", "sequence_id", "from_phone_number_id"),
    *_strings("sender_account_id", "sender_email", "sender_name"),
    _array("calls_assigned_to", th.StringType),
).to_dict()

# The key is the email address (Close gives these no id); deleting one resubscribes it.
UNSUBSCRIBED_EMAIL: JSONDict = deletable(
    th.PropertiesList(th.Property("email", th.StringType, required=True)).to_dict()
)
