"""Telephony, accounts and collaboration: phone numbers, blocked numbers, dialers, connected
accounts, send-as, scheduling links, comment threads and comments.
"""

from __future__ import annotations

from singer_sdk import typing as th

from tap_close.schemas.common import (
    EMAIL_ADDRESS,
    ID,
    JSONDict,
    _array,
    _booleans,
    _datetimes,
    _strings,
    _undocumented,
    audit,
    deletable,
)

# -- Fragments --------------------------------------------------------------------------------

MAIL_SERVER = th.ObjectType(  # custom email accounts; no credentials
    *_strings("host", "username"),
    th.Property("port", th.IntegerType),
    th.Property("use_ssl", th.BooleanType),
)
DIALER_USER = th.ObjectType(*_strings("user_id", "state"), th.Property("is_active", th.BooleanType))

# -- Stream schemas ---------------------------------------------------------------------------

PHONE_NUMBER: JSONDict = deletable(
    th.PropertiesList(
        ID,
        *_strings("number", "number_formatted", "type", "label", "user_id", "country"),
        *_strings("carrier", "carrier_type", "address_id", "bundle_id"),
        *_strings("forward_to", "forward_to_formatted", "voicemail_greeting_url"),
        *_booleans("is_group_number", "is_premium", "is_verified", "was_ported"),
        *_booleans("sms_enabled", "mms_enabled", "forward_to_enabled", "press_1_to_accept"),
        _array("participants", th.StringType),
        _array("phone_numbers", th.StringType),
        _array("phone_numbers_formatted", th.StringType),
        _array("supports_sms_to_countries", th.StringType),
        _array("supports_mms_to_countries", th.StringType),
        th.Property("inbound_ring_duration", th.IntegerType, description="Seconds."),
        th.Property("last_billed_price", th.NumberType),
        th.Property("next_billing_on", th.DateTimeType),
        *audit(),
    ).to_dict()
)

BLOCKED_PHONE_NUMBER: JSONDict = deletable(
    th.PropertiesList(ID, *_strings("phone", "reason"), *audit()).to_dict()
)

CONNECTED_ACCOUNT: JSONDict = th.PropertiesList(
    ID,
    *_strings("_type", "user_id", "organization_id", "email"),
    _array("identities", EMAIL_ADDRESS),
    _array("synced_calendars", th.StringType),
    th.Property("smtp", MAIL_SERVER),
    th.Property("imap", MAIL_SERVER),
    # The rest of the documented default `_fields` (OpenAPI); shapes not documented but flags,
    # states and dates are plain.
    *_strings("calendar_receive_status", "email_receive_status", "receive_status"),
    *_strings("send_status", "zoom_account_plan"),
    *_booleans("has_meeting_creation_scopes", "is_imap_archive_sync_enabled"),
    *_booleans("sync_all_calendars"),
    *_datetimes("date_created", "lead_suggestions_updated_at"),
    *_undocumented("available_calendars", "available_features", "enabled_features", "calendly"),
    *_undocumented("default_identity", "latest_receive_error", "latest_send_error"),
).to_dict()

DIALER: JSONDict = th.PropertiesList(  # dialer sessions; dates come naive (UTC)
    ID,
    *_strings("type", "status", "source_type", "source_value", "caller_id"),
    *_strings("music_preference", "ring_mode", "user_id"),
    th.Property("is_user_dependent", th.BooleanType),
    _array("users", DIALER_USER),
    *audit(),
).to_dict()

SEND_AS: JSONDict = deletable(
    th.PropertiesList(
        ID, *_strings("allowing_user_id", "allowed_user_id", "organization_id")
    ).to_dict()
)

SCHEDULING_LINK: JSONDict = deletable(  # user (type USER) and shared (type SHARED) links
    th.PropertiesList(
        ID,
        *_strings("name", "description", "url", "type", "user_id", "organization_id"),
        *_strings("source", "source_id", "source_type", "template_tag", "oauth_client_id"),
        th.Property("duration_in_minutes", th.IntegerType),
    ).to_dict()
)

COMMENT_THREAD: JSONDict = th.PropertiesList(  # created_at/updated_at, not date_*
    ID,
    *_strings("object_id", "object_type", "lead_id", "organization_id"),
    th.Property("num_comments", th.IntegerType),
    _array("participating", th.StringType),
    *_datetimes("created_at", "updated_at"),
).to_dict()

COMMENT: JSONDict = deletable(  # created_at/updated_at, not date_*
    th.PropertiesList(
        ID,
        *_strings("thread_id", "lead_id", "organization_id"),
        th.Property("body", th.StringType, description="Rich text (restricted XHTML)."),
        *_undocumented("mentions"),
        *_datetimes("created_at", "updated_at", "removed_at"),
        *_strings("created_by", "updated_by", "removed_by"),
    ).to_dict()
)
