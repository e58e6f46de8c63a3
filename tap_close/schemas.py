"""JSON schemas for the Close streams.

Reusable fragments first, then one plain-dict schema per stream, then the helpers for Close
custom fields, which are added to the LEAD, CONTACT and OPPORTUNITY schemas at run time.
Every property is nullable except ``id``: Close omits or nulls fields freely.
"""

from __future__ import annotations

import copy
import typing as t

from singer_sdk import typing as th

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

JSONDict = dict[str, t.Any]


def _strings(*names: str) -> list[th.Property]:
    """Nullable string properties."""
    return [th.Property(name, th.StringType) for name in names]


def _array(name: str, items: th.JSONTypeHelper | type[th.JSONTypeHelper]) -> th.Property:
    """Nullable array property."""
    return th.Property(name, th.ArrayType(items))


def _cents(*names: str) -> list[th.Property]:
    """Money amounts: integers in cents of the object's currency."""
    return [th.Property(name, th.IntegerType, description="In cents.") for name in names]


def audit(*, authors: bool = True, organization: bool = True) -> list[th.Property]:
    """The audit block: date_created, date_updated, created_by/updated_by (+ names), org id."""
    props = [
        th.Property("date_created", th.DateTimeType),
        th.Property("date_updated", th.DateTimeType),
    ]
    if authors:
        props += _strings("created_by", "created_by_name", "updated_by", "updated_by_name")
    if organization:
        props += _strings("organization_id")
    return props


ID = th.Property("id", th.StringType, required=True)
FREE_FORM = th.ObjectType()  # really free-form objects (AI summaries, action details)

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
INTEGRATION_LINK = th.ObjectType(*_strings("name", "url"))
ATTACHMENT = th.ObjectType(
    *_strings("url", "filename", "content_type", "thumbnail_url"),
    th.Property("size", th.IntegerType),
)
RECENT_CALL = th.ObjectType(
    ID,
    *_strings("status", "dialer_id"),
    th.Property("duration", th.IntegerType, description="Seconds."),
    th.Property("finish_timestamp", th.DateTimeType),
)
SEQUENCE_SUBSCRIPTION = th.ObjectType(  # a contact's sequence subscriptions
    *_strings("subscription_id", "subscription_status", "subscription_status_reason"),
    *_strings("sequence_id", "sequence_name", "sequence_status", "contact_email"),
    *_strings("initial_email_id"),
    th.Property("date_created", th.DateTimeType),
    th.Property("start_date", th.DateTimeType),
)
TASK = th.ObjectType(  # open tasks embedded in a lead
    ID,
    *_strings("_type", "view", "text", "object_type", "object_id"),
    *_strings("lead_id", "lead_name", "contact_id", "contact_name"),
    *_strings("assigned_to", "assigned_to_name"),
    th.Property("date", th.StringType, description="Date or date-time, depending on the task."),
    th.Property("due_date", th.StringType, description="Date or date-time."),
    th.Property("is_complete", th.BooleanType),
    th.Property("is_dateless", th.BooleanType),
    *audit(),
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
PIPELINE_STATUS = th.ObjectType(ID, *_strings("label", "type"))
CUSTOM_FIELD_ASSOCIATION = th.ObjectType(  # shared custom fields: one per object type
    *_strings("object_type", "custom_activity_type_id", "custom_object_type_id"),
    _array("editable_with_roles", th.StringType),
    th.Property("required", th.BooleanType),
)

# -- Objects embedded in others (custom fields excluded) ---------------------------------------

CONTACT_PROPERTIES: tuple[th.Property, ...] = (
    ID,
    *_strings("lead_id", "name", "display_name", "title"),
    *_strings("timezone", "timezone_source", "lead_suggestions_operation_id"),
    _array("emails", EMAIL),
    _array("phones", PHONE),
    _array("urls", URL),
    _array("integration_links", INTEGRATION_LINK),
    _array("recent_calls", RECENT_CALL),
    _array("subscriptions", SEQUENCE_SUBSCRIPTION),
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
    _array("integration_links", INTEGRATION_LINK),
    *audit(),
)

# -- Stream schemas ---------------------------------------------------------------------------

LEAD: JSONDict = th.PropertiesList(
    ID,
    *_strings("name", "display_name", "description", "url", "html_url", "source"),
    *_strings("status_id", "status_label", "primary_address_summary", "contacts_summary"),
    th.Property("localtime", th.DateTimeType),
    _array("contact_ids", th.StringType),
    _array("contacts", th.ObjectType(*CONTACT_PROPERTIES)),
    _array("opportunities", th.ObjectType(*OPPORTUNITY_PROPERTIES)),
    _array("addresses", ADDRESS),
    _array("tasks", TASK),
    _array("integration_links", INTEGRATION_LINK),
    th.Property("primary_email", EMAIL),
    th.Property("primary_phone", PHONE),
    _array("recent_calls", RECENT_CALL),
    _array("summaries", FREE_FORM),
    *audit(),
).to_dict()

CONTACT: JSONDict = th.PropertiesList(*CONTACT_PROPERTIES).to_dict()

OPPORTUNITY: JSONDict = th.PropertiesList(*OPPORTUNITY_PROPERTIES).to_dict()

# GET /user/ shape; /me/ differs (``organizations`` holds full objects) and is not this stream.
USER: JSONDict = th.PropertiesList(
    ID,
    *_strings("email", "first_name", "last_name", "image"),
    _array("organizations", th.StringType),
    *audit(authors=False, organization=False),
).to_dict()

LEAD_STATUS: JSONDict = th.PropertiesList(ID, *_strings("label", "organization_id")).to_dict()

OPPORTUNITY_STATUS: JSONDict = th.PropertiesList(
    ID, *_strings("label", "type", "pipeline_id", "organization_id")
).to_dict()

PIPELINE: JSONDict = th.PropertiesList(
    ID,
    *_strings("name"),
    _array("statuses", PIPELINE_STATUS),
    *audit(),  # Close sends these timestamps naive (UTC)
).to_dict()

CUSTOM_FIELD: JSONDict = th.PropertiesList(  # a custom field definition, any object type
    ID,
    *_strings("name", "description", "type", "converting_to_type"),
    *_strings("custom_activity_type_id", "custom_object_type_id", "referenced_custom_type_id"),
    _array("choices", th.StringType),
    th.Property("accepts_multiple_values", th.BooleanType),
    th.Property("back_reference_is_visible", th.BooleanType),
    th.Property("required", th.BooleanType),
    _array("editable_with_roles", th.StringType),
    _array("associations", CUSTOM_FIELD_ASSOCIATION),
    *audit(),
).to_dict()

# -- Custom fields ----------------------------------------------------------------------------

# Close sends values as ``custom.<field_id>``; dots break warehouse column names.
CUSTOM_PREFIX = "custom_"

# Schema of one value per Close type; other types (``hidden``, unknown) are free-form.
_CUSTOM_VALUE_TYPES: dict[str, JSONDict] = {
    "text": {"type": ["string"]},
    "textarea": {"type": ["string"]},
    "choices": {"type": ["string"]},
    "user": {"type": ["string"]},  # user id
    "contact": {"type": ["string"]},  # contact id
    "custom_object": {"type": ["string"]},  # custom object id
    "number": {"type": ["number"]},
    "date": {"type": ["string"], "format": "date"},
    "datetime": {"type": ["string"], "format": "date-time"},
}


ANY_JSON_TYPES = ("object", "array", "string", "number", "boolean", "null")


def custom_field_column(field_id: str) -> str:
    """Column name for a custom field id: ``cf_x`` -> ``custom_cf_x``."""
    return CUSTOM_PREFIX + field_id


def _value_schema(close_type: str | None, converting_to: str | None) -> JSONDict | None:
    """Schema of one value, widened during a type change; None means free-form."""
    value = _CUSTOM_VALUE_TYPES.get(close_type or "")
    if value is None or not converting_to or converting_to == close_type:
        return copy.deepcopy(value)
    new = _CUSTOM_VALUE_TYPES.get(converting_to)
    if new is None:
        return None
    widened: JSONDict = {"type": sorted({*value["type"], *new["type"]})}
    if value.get("format") and value.get("format") == new.get("format"):
        widened["format"] = value["format"]
    return widened


def custom_field_property(definition: Mapping[str, t.Any]) -> JSONDict:
    """JSON schema (always nullable) for the values of one Close custom field definition."""
    field_id, close_type = definition.get("id"), definition.get("type")
    name = definition.get("name") or field_id
    converting_to = definition.get("converting_to_type")
    multiple = bool(definition.get("accepts_multiple_values"))
    value = _value_schema(close_type, converting_to)

    if value is None:  # any JSON value; typed so targets and the SDK can map it
        schema: JSONDict = {"type": list(ANY_JSON_TYPES)}
    elif multiple:
        schema = {"type": ["array", "null"], "items": value}
    else:
        schema = {**value, "type": [*value["type"], "null"]}

    details = ", ".join(
        [str(close_type or "unknown type")]
        + (["multiple values"] if multiple else [])
        + ([f"converting to {converting_to}"] if converting_to else [])
        + [f"id {field_id}"]
    )
    description = f"Close custom field '{name}' ({details})."
    if definition.get("description"):
        description += f" {definition['description']}"
    return {**schema, "title": name, "description": description}


def custom_field_properties(definitions: Iterable[Mapping[str, t.Any]]) -> dict[str, JSONDict]:
    """``{column: schema}`` for Close custom field definitions (those without id skipped)."""
    return {
        custom_field_column(d["id"]): custom_field_property(d) for d in definitions if d.get("id")
    }


def with_custom_fields(schema: JSONDict, definitions: Iterable[Mapping[str, t.Any]]) -> JSONDict:
    """Copy of a stream schema with the custom field columns added."""
    extended = copy.deepcopy(schema)
    extended["properties"].update(custom_field_properties(definitions))
    return extended


def datetime_properties(schema: Mapping[str, t.Any]) -> tuple[str, ...]:
    """Top-level properties with format date-time (naive values get "+00:00" in the tap)."""
    return tuple(
        name
        for name, prop in schema.get("properties", {}).items()
        if prop.get("format") == "date-time"
    )
