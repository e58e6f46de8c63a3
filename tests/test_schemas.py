"""Stream schemas against Close's documented example responses, and their static shape.

Helpers here are shared by the other tests/test_schemas_*.py files.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from jsonschema import Draft202012Validator

from tap_close import schemas
from tap_close.schemas import (
    custom_field_column,
    datetime_properties,
    with_custom_fields,
)

# Close's published example responses (data, copied from Close's OpenAPI description; see the
# README there), kept in the repository so that every clone runs these tests.
EXAMPLES_DIR = Path(__file__).resolve().parent / "close_examples"


class Source(NamedTuple):
    """Where a schema's example objects are in Close's examples."""

    file: str
    paths: set[str] | None = None  # endpoint paths; None: all of the file
    defs: str | None = None  # custom field definitions file
    nested: str | None = None  # the objects are the items of this key of each example object
    only_type: str | None = None  # keep only objects with this ``_type``


def activity_sources(file: str, close_type: str, defs: str | None = None) -> list[Source]:
    """An activity type's own examples plus those of the generic /activity/ list."""
    return [Source(file, defs=defs), Source("activities.json", only_type=close_type, defs=defs)]


ME = {"/me/"}

# schema name -> where its examples are
CASES: dict[str, list[Source]] = {
    "LEAD": [Source("leads.json", defs="custom-fields-lead.json")],
    "CONTACT": [Source("contacts.json", defs="custom-fields-contact.json")],
    "OPPORTUNITY": [Source("opportunities.json", defs="custom-fields-opportunity.json")],
    # /me/ (organizations as full objects) and /user/availability/ are other shapes.
    "USER": [Source("users.json", {"/user/", "/user/{id}/"})],
    "LEAD_STATUS": [
        Source("lead-statuses.json"),
        Source("organizations.json", nested="lead_statuses"),
    ],
    "OPPORTUNITY_STATUS": [Source("opportunity-statuses.json")],
    "PIPELINE": [Source("pipelines.json"), Source("organizations.json", nested="pipelines")],
    "CUSTOM_FIELD": [
        *(
            Source(f"custom-fields-{kind}.json")
            for kind in ("lead", "contact", "opportunity", "activity", "shared", "custom-object")
        ),
        Source("custom-activity-types.json", nested="fields"),
        Source("custom-object-types.json", nested="fields"),
        Source("custom-object-types.json", nested="back_reference_fields"),
    ],
    # -- activities
    "CALL_ACTIVITY": activity_sources("activities-call.json", "Call"),
    "EMAIL_ACTIVITY": activity_sources("activities-email.json", "Email"),
    "EMAIL_THREAD_ACTIVITY": activity_sources("activities-emailthread.json", "EmailThread"),
    "NOTE_ACTIVITY": activity_sources("activities-note.json", "Note"),
    "MEETING_ACTIVITY": activity_sources("activities-meeting.json", "Meeting"),
    "SMS_ACTIVITY": activity_sources("activities-sms.json", "SMS"),
    "WHATSAPP_MESSAGE_ACTIVITY": activity_sources(
        "activities-whatsapp-message.json", "WhatsAppMessage"
    ),
    "CREATED_ACTIVITY": activity_sources("activities-created.json", "Created"),
    "IMPORT_UPDATE_ACTIVITY": activity_sources("activities-import-update.json", "ImportUpdate"),
    "LEAD_STATUS_CHANGE_ACTIVITY": activity_sources(
        "activities-lead-status-change.json", "LeadStatusChange"
    ),
    "OPPORTUNITY_STATUS_CHANGE_ACTIVITY": activity_sources(
        "activities-opportunity-status-change.json", "OpportunityStatusChange"
    ),
    "TASK_COMPLETED_ACTIVITY": activity_sources("activities-task-completed.json", "TaskCompleted"),
    "LEAD_MERGE_ACTIVITY": activity_sources("activities-lead-merge.json", "LeadMerge"),
    "FORM_SUBMISSION_ACTIVITY": activity_sources(
        "activities-form-submission.json", "FormSubmission"
    ),
    "CUSTOM_ACTIVITY": activity_sources(
        "activities-custom.json", "CustomActivity", "custom-fields-activity.json"
    ),
    # -- tasks, events, custom activity types
    "TASK": [Source("tasks.json")],
    "EVENT": [Source("events.json")],
    "CUSTOM_ACTIVITY_TYPE": [Source("custom-activity-types.json")],
    # -- the other objects
    "ORGANIZATION": [
        Source("organizations.json"),
        Source("users.json", ME, nested="organizations"),
    ],
    "MEMBERSHIP": [
        Source("organizations.json", nested="memberships"),
        Source("organizations.json", nested="inactive_memberships"),
        Source("users.json", ME, nested="memberships"),
    ],
    "GROUP": [Source("groups.json")],
    "ROLE": [Source("roles.json")],
    "SMART_VIEW": [Source("smart-views.json")],
    # /email_template/{id}/render/ is a rendering, another shape.
    "EMAIL_TEMPLATE": [
        Source("email-templates.json", {"/email_template/", "/email_template/{id}/"}),
    ],
    "SMS_TEMPLATE": [Source("sms-templates.json")],
    "SEQUENCE": [Source("sequences.json")],
    "SEQUENCE_SUBSCRIPTION": [Source("sequence-subscriptions.json")],
    "OUTCOME": [Source("outcomes.json")],
    "PLAYBOOK": [Source("playbooks.json")],
    "PHONE_NUMBER": [
        Source("phone-numbers.json"),
        Source("users.json", ME, nested="phone_numbers"),
    ],
    # /blocked_phone_number/settings/ is the organization's settings, another shape.
    "BLOCKED_PHONE_NUMBER": [
        Source(
            "blocked-phone-numbers.json",
            {"/blocked_phone_number/", "/blocked_phone_number/{id}/"},
        )
    ],
    "CONNECTED_ACCOUNT": [
        Source("connected-accounts.json"),
        Source("users.json", ME, nested="email_accounts"),
    ],
    "DIALER": [Source("dialers.json")],
    "SEND_AS": [Source("send-as.json")],
    "SCHEDULING_LINK": [Source("scheduling-links.json")],  # user and shared links
    "SHARED_CUSTOM_FIELD": [Source("custom-fields-shared.json")],
    "CUSTOM_OBJECT_TYPE": [Source("custom-object-types.json")],
    # No definitions: Close's examples reuse field ids across resources, and none of its
    # definitions of these ids matches the values (single ids vs multiple values), so the
    # values stay free-form (unknown fields) here.
    "CUSTOM_OBJECT": [Source("custom-objects.json")],
    "COMMENT_THREAD": [Source("comments.json", {"/comment_thread/", "/comment_thread/{id}/"})],
    "COMMENT": [Source("comments.json", {"/comment/", "/comment/{id}/"})],
    "INTEGRATION_LINK": [Source("integration-links.json")],
    "WEBHOOK": [Source("webhooks.json")],
    "BULK_ACTION_EMAIL": [Source("bulk-actions-email.json")],
    "BULK_ACTION_EDIT": [Source("bulk-actions-edit.json")],
    "BULK_ACTION_DELETE": [Source("bulk-actions-delete.json")],
    "BULK_ACTION_SEQUENCE_SUBSCRIPTION": [Source("bulk-actions-sequence-subscriptions.json")],
    "UNSUBSCRIBED_EMAIL": [Source("unsubscribed-emails.json")],
}
STREAM_SCHEMAS: dict[str, dict[str, Any]] = {name: getattr(schemas, name) for name in CASES}

KEYS = {"UNSUBSCRIBED_EMAIL": "email"}  # the stream's key property; "id" otherwise
NOT_EMITTED = {"WEBHOOK": {"signature_key"}}  # example keys the schema leaves out on purpose

NAIVE_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")

# jsonschema only checks "date-time" when rfc3339-validator is installed (it is not here), so
# add a strict RFC 3339 check: without it naive timestamps would pass unnoticed.
FORMAT_CHECKER = copy.deepcopy(Draft202012Validator.FORMAT_CHECKER)
if "date-time" not in FORMAT_CHECKER.checkers:

    @FORMAT_CHECKER.checks("date-time", raises=ValueError)
    def _is_rfc3339(value: object) -> bool:
        if not isinstance(value, str):
            return True
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        return RFC3339.fullmatch(value) is not None


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


def load(name: str) -> list[dict[str, Any]]:
    """Close's example GET responses in one examples file."""
    examples: list[dict[str, Any]] = json.loads((EXAMPLES_DIR / name).read_text())["examples"]
    return examples


def example_objects(name: str, paths: set[str] | None) -> list[tuple[str, dict[str, Any]]]:
    """(label, object) for list items and single objects of the chosen endpoints."""
    found = []
    for example in load(name):
        if paths is not None and example["path"] not in paths:
            continue
        body = example["body"]
        items = body["data"] if example["kind"] == "list" else [body]
        found += [(f"{name} {example['path']} #{i}", item) for i, item in enumerate(items)]
    return found


def definitions(name: str | None) -> list[dict[str, Any]]:
    """Custom field definitions of an examples file (list items and single objects)."""
    return [obj for _, obj in example_objects(name, None)] if name else []


def source_objects(source: Source) -> list[tuple[str, dict[str, Any]]]:
    """(label, object) for the example objects of one Source."""
    found = []
    for label, obj in example_objects(source.file, source.paths):
        if source.nested:
            items = obj.get(source.nested) or []
            found += [(f"{label} .{source.nested}[{i}]", item) for i, item in enumerate(items)]
        elif source.only_type is None or obj.get("_type") == source.only_type:
            found.append((label, obj))
    return found


def assume_utc(value: Any, schema: dict[str, Any]) -> Any:
    """Append "+00:00" to naive date-time strings at any depth the schema types as date-time."""
    if isinstance(value, str) and schema.get("format") == "date-time":
        return value + "+00:00" if NAIVE_DATETIME.fullmatch(value) else value
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {key: assume_utc(item, props.get(key, {})) for key, item in value.items()}
    if isinstance(value, list):
        return [assume_utc(item, schema.get("items", {})) for item in value]
    return value


def normalise(
    record: dict[str, Any], schema: dict[str, Any], defs: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the tap does before validation: rename custom keys, extend the schema, fix tz.

    Nested timestamps stay typed date-time in the schemas (Close's examples only have naive
    ones at the top level: pipelines), so the fix here is recursive; the top level goes through
    datetime_properties() like the tap.
    """
    known = {d["id"]: d for d in defs if d.get("id")}
    record, used = dict(record), []
    for key in [k for k in record if k.startswith("custom.")]:
        field_id = key.removeprefix("custom.")
        record[custom_field_column(field_id)] = record.pop(key)
        used.append(known.get(field_id, {"id": field_id}))  # unknown id: free-form
    schema = with_custom_fields(schema, used)
    for key in datetime_properties(schema):
        if isinstance(record.get(key), str) and NAIVE_DATETIME.fullmatch(record[key]):
            record[key] += "+00:00"
    for key, prop in schema["properties"].items():  # free-form values travel as JSON text
        if prop.get("contentMediaType") == "application/json" and record.get(key) is not None:
            record[key] = json.dumps(record[key])
    return assume_utc(record, schema), schema


OBJECTS = [
    pytest.param(schema_name, obj, source.defs, id=f"{schema_name}: {label}")
    for schema_name, sources in CASES.items()
    for source in sources
    for label, obj in source_objects(source)
]

def needs_examples(test: Any) -> Any:
    """Marks a test that reads Close's examples (always there: tests/close_examples/)."""
    return test


# -- Close's examples -------------------------------------------------------------------------


def test_examples_are_in_the_repository() -> None:
    """Every example file the cases name is in tests/close_examples/ (none read from outside)."""
    files = {source.file for sources in CASES.values() for source in sources}
    files |= {source.defs for sources in CASES.values() for source in sources if source.defs}
    assert EXAMPLES_DIR.is_relative_to(Path(__file__).resolve().parents[1])
    missing = sorted(f for f in files if not (EXAMPLES_DIR / f).is_file())
    assert not missing, f"missing from {EXAMPLES_DIR}: {missing}"


@needs_examples
@pytest.mark.parametrize("schema_name", CASES)
def test_every_stream_has_examples(schema_name: str) -> None:
    assert any(param.values[0] == schema_name for param in OBJECTS)


@needs_examples
@pytest.mark.parametrize(("schema_name", "obj", "defs_file"), OBJECTS)
def test_example_validates(schema_name: str, obj: dict[str, Any], defs_file: str | None) -> None:
    record, schema = normalise(obj, STREAM_SCHEMAS[schema_name], definitions(defs_file))
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(schema).iter_errors(record)
    ]
    assert not errors


def missing_keys(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Keys of value (any depth) that the schema does not declare; free-form parts skipped."""
    if isinstance(value, list):
        items = schema.get("items", {})
        return [
            m for i, item in enumerate(value) for m in missing_keys(item, items, f"{path}[{i}]")
        ]
    props = schema.get("properties")
    if not isinstance(value, dict) or not props:
        return []
    missing = []
    for key, item in value.items():
        if key.startswith("custom."):
            continue
        if key not in props:
            missing.append(f"{path}.{key}")
        else:
            missing += missing_keys(item, props[key], f"{path}.{key}")
    return missing


@needs_examples
@pytest.mark.parametrize(("schema_name", "obj", "defs_file"), OBJECTS)
def test_example_fields_all_declared(
    schema_name: str, obj: dict[str, Any], defs_file: str | None
) -> None:
    """No field of Close's examples is silently dropped, nested ones included."""
    expected = [f".{key}" for key in NOT_EMITTED.get(schema_name, set()) if key in obj]
    assert missing_keys(obj, STREAM_SCHEMAS[schema_name]) == expected


@needs_examples
def test_naive_timestamps_rejected_without_normalisation() -> None:
    """The strict date-time check bites: pipelines come with naive timestamps."""
    (_, pipeline), *_ = example_objects("pipelines.json", None)
    assert not validator(schemas.PIPELINE).is_valid(pipeline)
    record, schema = normalise(pipeline, schemas.PIPELINE, [])
    assert record["date_created"] == "2019-11-04T11:04:13.014979+00:00"
    assert validator(schema).is_valid(record)


@needs_examples
def test_custom_values_renamed_and_typed() -> None:
    (_, contact), *_ = [o for o in example_objects("contacts.json", None) if "custom." in str(o)]
    record, schema = normalise(contact, schemas.CONTACT, definitions("custom-fields-contact.json"))
    column = custom_field_column("cf_j0P7kHmgFTZZnYBFtyPSZ3uQw4dpW8xKcW7Krps8atj")
    assert record[column] == "CEO"
    assert not any(key.startswith("custom.") for key in record)
    assert schema["properties"][column]["title"] == "Role"
    assert schema["properties"][column]["type"] == ["string", "null"]


# -- Static schema shape ----------------------------------------------------------------------


def walk_properties(
    schema: dict[str, Any], path: str = ""
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield (path, name, property schema) for every declared property at any depth."""
    for name, prop in schema.get("properties", {}).items():
        yield path, name, prop
        yield from walk_properties(prop, f"{path}.{name}")
        yield from walk_properties(prop.get("items", {}), f"{path}.{name}[]")


@pytest.mark.parametrize("schema_name", CASES)
def test_schema_is_valid_draft_2020_12(schema_name: str) -> None:
    Draft202012Validator.check_schema(STREAM_SCHEMAS[schema_name])


@pytest.mark.parametrize("schema_name", CASES)
def test_every_property_nullable_except_id(schema_name: str) -> None:
    schema = STREAM_SCHEMAS[schema_name]
    key = KEYS.get(schema_name, "id")
    assert schema["required"] == [key]
    for path, name, prop in walk_properties(schema):
        if name == "id" or (not path and name == key):
            assert not Draft202012Validator(prop).is_valid(None), f"{path}.id"
        else:
            assert Draft202012Validator(prop).is_valid(None), f"{path}.{name}"


@pytest.mark.parametrize("schema_name", CASES)
def test_every_property_typed_and_no_custom_keys(schema_name: str) -> None:
    for path, name, prop in walk_properties(STREAM_SCHEMAS[schema_name]):
        assert "type" in prop, f"{path}.{name} is untyped"
        assert not name.startswith(("custom.", custom_field_column("cf_"))), f"{path}.{name}"


def test_embedded_objects_match_stream_objects() -> None:
    lead = schemas.LEAD["properties"]
    for embedded, stream in (
        ("contacts", schemas.CONTACT),
        ("opportunities", schemas.OPPORTUNITY),
        ("tasks", schemas.TASK),  # open tasks only, but any task type
    ):
        own = {k: v for k, v in stream["properties"].items() if k != "_sdc_deleted_at"}
        assert lead[embedded]["items"]["properties"] == own
    assert set(lead) >= {"addresses", "tasks", "integration_links", "contact_ids"}
    assert "lead_id" in schemas.CONTACT["properties"]


def test_formats_and_money() -> None:
    opportunity = schemas.OPPORTUNITY["properties"]
    assert opportunity["date_won"]["format"] == "date"
    assert opportunity["date_created"]["format"] == "date-time"
    for name in ("value", "annualized_value", "expected_value", "annualized_expected_value"):
        assert opportunity[name]["type"] == ["integer", "null"]


def test_datetime_properties() -> None:
    assert datetime_properties(schemas.PIPELINE) == ("date_created", "date_updated")
    assert datetime_properties(schemas.LEAD_STATUS) == ()
    assert "date_lost" in datetime_properties(schemas.OPPORTUNITY)
    assert "date_won" not in datetime_properties(schemas.OPPORTUNITY)  # a date
    extended = with_custom_fields(schemas.LEAD, [{"id": "cf_at", "type": "datetime"}])
    assert "custom_cf_at" in datetime_properties(extended)
    assert "custom_cf_at" not in schemas.LEAD["properties"]  # copy, original untouched
