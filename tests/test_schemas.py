"""Stream schemas against Close's documented example responses, and the custom field helpers."""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tap_close import schemas
from tap_close.schemas import (
    custom_field_column,
    custom_field_properties,
    custom_field_property,
    datetime_properties,
    with_custom_fields,
)

EXAMPLES_DIR = Path(os.environ.get("CLOSE_EXAMPLES_DIR", "/work/shared/reference/close-examples"))

# schema name -> [(examples file, endpoint paths or None for all, custom field definitions file)]
CASES: dict[str, list[tuple[str, set[str] | None, str | None]]] = {
    "LEAD": [("leads.json", None, "custom-fields-lead.json")],
    "CONTACT": [("contacts.json", None, "custom-fields-contact.json")],
    "OPPORTUNITY": [("opportunities.json", None, "custom-fields-opportunity.json")],
    # /me/ (organizations as full objects) and /user/availability/ are other shapes.
    "USER": [("users.json", {"/user/", "/user/{id}/"}, None)],
    "LEAD_STATUS": [("lead-statuses.json", None, None)],
    "OPPORTUNITY_STATUS": [("opportunity-statuses.json", None, None)],
    "PIPELINE": [("pipelines.json", None, None)],
    "CUSTOM_FIELD": [
        (f"custom-fields-{kind}.json", None, None)
        for kind in ("lead", "contact", "opportunity", "activity", "shared", "custom-object")
    ],
}
STREAM_SCHEMAS: dict[str, dict[str, Any]] = {name: getattr(schemas, name) for name in CASES}

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
    return assume_utc(record, schema), schema


OBJECTS = [
    pytest.param(schema_name, obj, defs_file, id=f"{schema_name}: {label}")
    for schema_name, files in CASES.items()
    for examples_file, paths, defs_file in files
    if (EXAMPLES_DIR / examples_file).exists()
    for label, obj in example_objects(examples_file, paths)
]

needs_examples = pytest.mark.skipif(
    not EXAMPLES_DIR.is_dir(), reason=f"Close examples not found in {EXAMPLES_DIR}"
)


# -- Close's examples -------------------------------------------------------------------------


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
    assert missing_keys(obj, STREAM_SCHEMAS[schema_name]) == []


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
    assert schema["required"] == ["id"]
    for path, name, prop in walk_properties(schema):
        if name == "id":
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
    assert lead["contacts"]["items"]["properties"] == schemas.CONTACT["properties"]
    assert lead["opportunities"]["items"]["properties"] == schemas.OPPORTUNITY["properties"]
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


# -- Custom fields ----------------------------------------------------------------------------

VALUES: dict[str, tuple[Any, Any]] = {  # Close type: (a valid value, an invalid value)
    "text": ("hello", 5),
    "textarea": ("line 1\nline 2", 5),
    "choices": ("Cars", 5),
    "user": ("user_x", 5),
    "contact": ("cont_x", 5),
    "custom_object": ("custo_x", 5),
    "number": (12.5, "12.5"),
    "date": ("2014-06-12", "12/06/2014"),
    "datetime": ("2014-06-27T22:00:00-08:00", "2014-06-27"),
}


def definition(close_type: str | None, **extra: Any) -> dict[str, Any]:
    return {"id": "cf_abc", "name": "Deal size", "type": close_type, **extra}


def test_custom_field_column() -> None:
    assert schemas.CUSTOM_PREFIX == "custom_"
    assert custom_field_column("cf_abc") == "custom_cf_abc"


@pytest.mark.parametrize("close_type", VALUES)
def test_custom_field_types(close_type: str) -> None:
    good, bad = VALUES[close_type]
    schema = custom_field_property(definition(close_type))
    Draft202012Validator.check_schema(schema)
    check = validator(schema)
    assert check.is_valid(good)
    assert check.is_valid(None)
    assert not check.is_valid(bad)
    assert not check.is_valid([good])


@pytest.mark.parametrize(
    ("close_type", "expected"),
    [
        ("text", {"type": ["string", "null"]}),
        ("number", {"type": ["number", "null"]}),
        ("date", {"type": ["string", "null"], "format": "date"}),
        ("datetime", {"type": ["string", "null"], "format": "date-time"}),
    ],
)
def test_custom_field_schema_shape(close_type: str, expected: dict[str, Any]) -> None:
    schema = custom_field_property(definition(close_type))
    assert {k: v for k, v in schema.items() if k in ("type", "format")} == expected


@pytest.mark.parametrize("close_type", ["hidden", "some_future_type", None])
def test_custom_field_free_form(close_type: str | None) -> None:
    schema = custom_field_property(definition(close_type))
    assert set(schema["type"]) == {"object", "array", "string", "number", "boolean", "null"}
    assert set(schema) == {"type", "title", "description"}
    for value in (None, "x", 1, True, [1, "a"], {"any": {"json": None}}):
        assert validator(schema).is_valid(value)


@pytest.mark.parametrize("close_type", ["choices", "user", "contact", "custom_object"])
def test_custom_field_multiple_values(close_type: str) -> None:
    good, bad = VALUES[close_type]
    schema = custom_field_property(definition(close_type, accepts_multiple_values=True))
    assert schema["type"] == ["array", "null"]
    check = validator(schema)
    assert check.is_valid([good, good])
    assert check.is_valid([])
    assert check.is_valid(None)
    assert not check.is_valid(good)
    assert not check.is_valid([bad])
    assert "multiple values" in schema["description"]


def test_custom_field_title_and_description() -> None:
    schema = custom_field_property(definition("number", description="Seats in the deal"))
    assert schema["title"] == "Deal size"
    assert (
        schema["description"]
        == "Close custom field 'Deal size' (number, id cf_abc). Seats in the deal"
    )
    no_description = custom_field_property(definition("text", description=None))
    assert no_description["description"] == "Close custom field 'Deal size' (text, id cf_abc)."


@pytest.mark.parametrize(
    ("old", "new", "values"),
    [
        ("number", "text", [3, 3.5, "three", None]),
        ("text", "number", [3, "three", None]),
        ("date", "datetime", ["2014-06-12", "2014-06-27T22:00:00-08:00", None]),
        ("choices", "user", ["Cars", "user_x", None]),
    ],
)
def test_custom_field_type_change_widens(old: str, new: str, values: list[Any]) -> None:
    schema = custom_field_property(definition(old, converting_to_type=new))
    assert "null" in schema["type"]
    assert all(validator(schema).is_valid(value) for value in values)
    assert f"converting to {new}" in schema["description"]


def test_custom_field_type_change_to_hidden_is_free_form() -> None:
    schema = custom_field_property(definition("text", converting_to_type="hidden"))
    assert "object" in schema["type"] and "format" not in schema
    assert validator(schema).is_valid({"a": 1})


def test_custom_field_type_change_multiple_values() -> None:
    schema = custom_field_property(
        definition("choices", converting_to_type="user", accepts_multiple_values=True)
    )
    assert schema["type"] == ["array", "null"]
    assert validator(schema).is_valid(["Cars", "user_x"])


def test_custom_field_properties() -> None:
    props = custom_field_properties(
        [
            definition("text"),
            {"name": "no id", "type": "text"},
            {**definition("date"), "id": "cf_d"},
        ]
    )
    assert list(props) == ["custom_cf_abc", "custom_cf_d"]
    assert props["custom_cf_d"]["format"] == "date"


@needs_examples
@pytest.mark.parametrize(
    "defs_file",
    [f"custom-fields-{kind}.json" for kind in ("lead", "contact", "opportunity", "activity")]
    + ["custom-fields-shared.json", "custom-fields-custom-object.json"],
)
def test_custom_field_properties_for_close_definitions(defs_file: str) -> None:
    defs = definitions(defs_file)
    props = custom_field_properties(defs)
    assert set(props) == {custom_field_column(d["id"]) for d in defs}
    for schema in props.values():
        Draft202012Validator.check_schema(schema)
        assert validator(schema).is_valid(None)
        assert schema["title"]
