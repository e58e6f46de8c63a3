"""The helpers that type Close custom fields from their definitions."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tap_close import schemas
from tap_close.schemas import (
    custom_field_column,
    custom_field_properties,
    custom_field_property,
)
from tests.test_schemas import definitions, needs_examples, validator

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
    """Any JSON value, sent as JSON text (a string every loader accepts)."""
    schema = custom_field_property(definition(close_type))
    assert schema["type"] == ["string", "null"]
    assert schema["contentMediaType"] == "application/json"
    assert set(schema) == {"type", "contentMediaType", "title", "description"}
    for value in (None, "x", "1", '{"any": {"json": null}}'):
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
    assert schema["contentMediaType"] == "application/json" and "format" not in schema
    assert validator(schema).is_valid('{"a": 1}')


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
