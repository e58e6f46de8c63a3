"""Close custom fields: column names and value schemas from the field definitions.

Close sends values as top-level ``custom.<field_id>`` keys on leads, contacts, opportunities,
custom activities and custom objects; the tap renames them and adds their schemas at run time.
"""

from __future__ import annotations

import copy
import typing as t

from tap_close.schemas.common import JSON_TEXT, JSONDict

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

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

    if value is None:  # any JSON value, as JSON text (see JSON_TEXT)
        schema: JSONDict = copy.deepcopy(JSON_TEXT)
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
