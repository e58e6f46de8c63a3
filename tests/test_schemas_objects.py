"""Tombstones, activities, events and the other objects: what the example tests cannot see."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tap_close import schemas
from tap_close.schemas import DELETED_AT, deletable
from tests.test_schemas import (
    CASES,
    STREAM_SCHEMAS,
    example_objects,
    needs_examples,
    normalise,
    validator,
)

ACTIVITIES = [
    "CALL_ACTIVITY",
    "EMAIL_ACTIVITY",
    "EMAIL_THREAD_ACTIVITY",
    "NOTE_ACTIVITY",
    "MEETING_ACTIVITY",
    "SMS_ACTIVITY",
    "WHATSAPP_MESSAGE_ACTIVITY",
    "CREATED_ACTIVITY",
    "IMPORT_UPDATE_ACTIVITY",
    "LEAD_STATUS_CHANGE_ACTIVITY",
    "OPPORTUNITY_STATUS_CHANGE_ACTIVITY",
    "TASK_COMPLETED_ACTIVITY",
    "LEAD_MERGE_ACTIVITY",
    "FORM_SUBMISSION_ACTIVITY",
    "CUSTOM_ACTIVITY",
]
# Objects Close can delete (it has a DELETE endpoint for them, or deletes them with the lead).
DELETABLE = {
    "LEAD",
    "CONTACT",
    "OPPORTUNITY",
    "TASK",
    *ACTIVITIES,
    "CUSTOM_ACTIVITY_TYPE",
    "GROUP",
    "ROLE",
    "SMART_VIEW",
    "EMAIL_TEMPLATE",
    "SMS_TEMPLATE",
    "SEQUENCE",
    "OUTCOME",
    "PLAYBOOK",
    "PHONE_NUMBER",
    "BLOCKED_PHONE_NUMBER",
    "SEND_AS",
    "SCHEDULING_LINK",
    "SHARED_CUSTOM_FIELD",
    "CUSTOM_OBJECT_TYPE",
    "CUSTOM_OBJECT",
    "COMMENT",
    "INTEGRATION_LINK",
    "WEBHOOK",
    "UNSUBSCRIBED_EMAIL",
}
BULK_ACTIONS = [
    "BULK_ACTION_EMAIL",
    "BULK_ACTION_EDIT",
    "BULK_ACTION_DELETE",
    "BULK_ACTION_SEQUENCE_SUBSCRIPTION",
]


def props(schema_name: str) -> dict[str, Any]:
    properties: dict[str, Any] = getattr(schemas, schema_name)["properties"]
    return properties


# -- Tombstones -------------------------------------------------------------------------------


def test_deleted_at_property() -> None:
    (name, prop), *_ = DELETED_AT.to_dict().items()
    assert name == "_sdc_deleted_at"
    assert prop == {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "Set on tombstone records: when Close deleted the object",
    }


def test_deletable_returns_an_extended_copy() -> None:
    original = {"type": "object", "properties": {"id": {"type": ["string"]}}, "required": ["id"]}
    extended = deletable(original)
    assert list(extended["properties"]) == ["id", "_sdc_deleted_at"]
    assert extended["required"] == ["id"]
    assert "_sdc_deleted_at" not in original["properties"]  # original untouched
    assert deletable(extended) == extended
    assert validator(extended).is_valid({"id": "x", "_sdc_deleted_at": None})
    assert validator(extended).is_valid({"id": "x", "_sdc_deleted_at": "2024-01-02T03:04:05Z"})
    assert not validator(extended).is_valid({"id": "x", "_sdc_deleted_at": "yesterday"})


@pytest.mark.parametrize("schema_name", CASES)
def test_tombstone_column_on_deletable_objects_only(schema_name: str) -> None:
    has_it = "_sdc_deleted_at" in STREAM_SCHEMAS[schema_name]["properties"]
    assert has_it == (schema_name in DELETABLE)


def test_every_deletable_object_is_tested() -> None:
    assert set(CASES) >= DELETABLE


# -- Activities -------------------------------------------------------------------------------

BASE = [
    "id",
    "_type",
    "lead_id",
    "contact_id",
    "user_id",
    "user_name",
    "users",
    "organization_id",
    "date_created",
    "date_updated",
    "activity_at",
    "created_by",
    "created_by_name",
    "updated_by",
    "updated_by_name",
]


@pytest.mark.parametrize("schema_name", ACTIVITIES)
def test_activities_share_the_base(schema_name: str) -> None:
    activity = props(schema_name)
    assert list(activity)[: len(BASE)] == [p.name for p in schemas.ACTIVITY_BASE]
    assert set(BASE) <= set(activity)
    assert activity["activity_at"]["format"] == "date-time"
    assert activity["users"]["items"]["type"] == ["string"]


def test_activity_types_by_close_type() -> None:
    assert sorted(id(s) for s in schemas.ACTIVITY_TYPES.values()) == sorted(
        id(getattr(schemas, name)) for name in ACTIVITIES
    )
    assert schemas.ACTIVITY_TYPES["CustomActivity"] is schemas.CUSTOM_ACTIVITY


def test_email_nested_fields_typed() -> None:
    email = props("EMAIL_ACTIVITY")
    envelope = email["envelope"]["properties"]
    assert set(envelope) >= {"from", "sender", "to", "cc", "bcc", "reply_to", "message_id"}
    assert envelope["from"]["items"]["properties"].keys() == {"email", "name"}
    assert email["opens"]["items"]["properties"]["opened_at"]["format"] == "date-time"
    assert email["attachments"]["items"]["properties"]["size"]["type"] == ["integer", "null"]
    assert email["send_attempts"]["type"] == ["array", "null"]
    thread = props("EMAIL_THREAD_ACTIVITY")
    embedded = thread["emails"]["items"]["properties"]
    assert {k: v for k, v in email.items() if k != "_sdc_deleted_at"} == embedded


def test_meeting_and_call_nested_fields_typed() -> None:
    meeting = props("MEETING_ACTIVITY")
    attendee = meeting["attendees"]["items"]["properties"]
    assert attendee["is_organizer"]["type"] == ["boolean", "null"]
    assert set(attendee) >= {"email", "name", "contact_id", "user_id", "status"}
    assert set(meeting["conference_links"]["items"]["properties"]) == {"type", "url"}
    assert meeting["starts_at"]["format"] == "date-time"
    call = props("CALL_ACTIVITY")
    assert call["duration"]["type"] == ["integer", "null"]
    assert call["cost"]["type"] == ["string", "null"]  # Close sends cents as a string


def test_custom_activity_has_no_static_custom_fields() -> None:
    assert not [k for k in props("CUSTOM_ACTIVITY") if k.startswith(("custom.", "custom_cf"))]
    assert "custom_activity_type_id" in props("CUSTOM_ACTIVITY")
    fields = props("CUSTOM_ACTIVITY_TYPE")["fields"]["items"]["properties"]
    assert fields == schemas.CUSTOM_FIELD["properties"]


@needs_examples
def test_custom_activity_values_renamed_and_typed() -> None:
    (_, activity), *_ = [
        o for o in example_objects("activities-custom.json", None) if "custom." in str(o)
    ]
    defs = [
        obj
        for _, obj in example_objects("custom-fields-activity.json", None)
        if obj.get("custom_activity_type_id") == activity["custom_activity_type_id"]
    ]
    record, schema = normalise(activity, schemas.CUSTOM_ACTIVITY, defs)
    column = "custom_cf_cSh3fWT3rEJ1BFSezme2YAG6bPrZV5wUWKKrW4iN19g"
    assert record[column] == "Yes"
    assert schema["properties"][column]["type"] == ["string", "null"]
    assert validator(schema).is_valid(record)


# -- Tasks and events -------------------------------------------------------------------------


def test_task_covers_every_task_type() -> None:
    task = props("TASK")
    for extra in ("voicemail_url", "emails", "opportunity_value", "email_id", "step_id"):
        assert extra in task
    assert task["opportunity_value"]["type"] == ["integer", "null"]
    assert "format" not in task["date"]  # a date or a date-time


def test_event_shape() -> None:
    event = props("EVENT")
    for name in ("data", "previous_data"):
        assert event[name]["type"] == ["object", "null"]
        assert validator(event[name]).is_valid({"anything": [1, {"goes": None}]})
    assert event["changed_fields"] == {"type": ["array", "null"], "items": {"type": ["string"]}}
    meta = event["meta"]
    assert set(meta["properties"]) == {
        "request_method",
        "request_path",
        "bulk_action_id",
        "merge_source_lead_id",
        "merge_destination_lead_id",
    }
    assert validator(meta).is_valid({"request_method": "POST", "something_new": 1})
    assert event["date_updated"]["format"] == "date-time"


@needs_examples
def test_event_naive_timestamps_normalised() -> None:
    (_, event), *_ = example_objects("events.json", None)
    assert not validator(schemas.EVENT).is_valid(event)  # naive: needs the tap's fix
    record, schema = normalise(event, schemas.EVENT, [])
    assert record["date_updated"] == "2016-10-19T12:22:10.434000+00:00"
    assert validator(schema).is_valid(record)


# -- The other objects ------------------------------------------------------------------------


def test_membership_and_organization() -> None:
    membership = props("MEMBERSHIP")
    assert membership["is_active"]["type"] == ["boolean", "null"]
    organization = props("ORGANIZATION")
    own = {k: v for k, v in membership.items() if k != "is_active"}
    for name in ("memberships", "inactive_memberships"):
        assert organization[name]["items"]["properties"] == own
    assert organization["pipelines"]["items"]["properties"] == props("PIPELINE")


def test_group_members() -> None:
    members = props("GROUP")["members"]
    assert members["items"]["properties"] == {"user_id": {"type": ["string", "null"]}}


@needs_examples
def test_webhook_never_declares_its_secret() -> None:
    (_, webhook), *_ = example_objects("webhooks.json", None)
    assert "signature_key" in webhook  # Close does send it
    assert "signature_key" not in props("WEBHOOK")
    assert not [k for k in props("WEBHOOK") if "secret" in k or "key" in k]


@pytest.mark.parametrize("schema_name", ["COMMENT", "COMMENT_THREAD", "PLAYBOOK"])
def test_created_at_updated_at_objects(schema_name: str) -> None:
    properties = props(schema_name)
    assert properties["created_at"]["format"] == "date-time"
    assert properties["updated_at"]["format"] == "date-time"
    assert "date_created" not in properties


@pytest.mark.parametrize("schema_name", BULK_ACTIONS)
def test_bulk_actions_share_a_base(schema_name: str) -> None:
    base = [p.name for p in schemas.BULK_ACTION_BASE]
    assert list(props(schema_name))[: len(base)] == base
    assert props(schema_name)["n_objects_processed"]["type"] == ["integer", "null"]


def test_unsubscribed_email_keyed_by_email() -> None:
    schema = schemas.UNSUBSCRIBED_EMAIL
    assert schema["required"] == ["email"]
    assert set(schema["properties"]) == {"email", "_sdc_deleted_at"}
    assert not Draft202012Validator(schema["properties"]["email"]).is_valid(None)


def test_shared_custom_field_covers_associations() -> None:
    shared = props("SHARED_CUSTOM_FIELD")
    assert {k: v for k, v in shared.items() if k != "_sdc_deleted_at"} == props("CUSTOM_FIELD")
    association = shared["associations"]["items"]["properties"]
    assert set(association) >= {"object_type", "required", "custom_activity_type_id"}


def test_connected_accounts_carry_no_credentials() -> None:
    for server in ("smtp", "imap"):
        fields = set(props("CONNECTED_ACCOUNT")[server]["properties"])
        assert fields == {"host", "port", "use_ssl", "username"}


# -- The package keeps the old module's names -------------------------------------------------

OLD_NAMES = [
    "JSONDict",
    "_strings",
    "_array",
    "_cents",
    "audit",
    "ID",
    "FREE_FORM",
    "ADDRESS",
    "EMAIL",
    "PHONE",
    "URL",
    "INTEGRATION_LINK",
    "ATTACHMENT",
    "RECENT_CALL",
    "SEQUENCE_SUBSCRIPTION",
    "TASK",
    "STALL_STATUS",
    "SUGGESTED_ACTION",
    "COMMENT_SUMMARY",
    "PIPELINE_STATUS",
    "CUSTOM_FIELD_ASSOCIATION",
    "CONTACT_PROPERTIES",
    "OPPORTUNITY_PROPERTIES",
    "LEAD",
    "CONTACT",
    "OPPORTUNITY",
    "USER",
    "LEAD_STATUS",
    "OPPORTUNITY_STATUS",
    "PIPELINE",
    "CUSTOM_FIELD",
    "CUSTOM_PREFIX",
    "_CUSTOM_VALUE_TYPES",
    "ANY_JSON_TYPES",
    "custom_field_column",
    "_value_schema",
    "custom_field_property",
    "custom_field_properties",
    "with_custom_fields",
    "datetime_properties",
]


@pytest.mark.parametrize("name", OLD_NAMES)
def test_old_module_names_still_exported(name: str) -> None:
    assert hasattr(schemas, name)
    assert name in schemas.__all__


def test_all_is_complete_and_importable() -> None:
    assert len(set(schemas.__all__)) == len(schemas.__all__)
    for name in schemas.__all__:
        assert hasattr(schemas, name), name
