"""Property helpers and fragments shared by the schemas of every Close object.

Every property is nullable except ``id``: Close omits or nulls fields freely.
"""

from __future__ import annotations

import copy
import typing as t

from singer_sdk import typing as th

JSONDict = dict[str, t.Any]

ANY_JSON_TYPES = ("object", "array", "string", "number", "boolean", "null")

ID = th.Property("id", th.StringType, required=True)
# Really free-form objects (AI summaries, queries, event payloads). No `properties` key: the
# SDK's flattening would drop an object with empty `properties` from the SCHEMA yet still
# flatten its values into the RECORDs; without it, a flattened object is one JSON text column.
FREE_FORM = th.CustomType({"type": ["object", "null"], "additionalProperties": True})
#: Any JSON value (hidden custom fields, undocumented fields) travels as JSON text: a string
#: every loader accepts (pipelinewise-target-postgres and target-duckdb reject a union of every
#: JSON type). `contentMediaType` marks these columns; the stream encodes their values.
JSON_TEXT: JSONDict = {"type": ["string", "null"], "contentMediaType": "application/json"}
ANY = th.CustomType(JSON_TEXT)


def _strings(*names: str) -> list[th.Property]:
    """Nullable string properties."""
    return [th.Property(name, th.StringType) for name in names]


def _array(name: str, items: th.JSONTypeHelper | type[th.JSONTypeHelper]) -> th.Property:
    """Nullable array property."""
    return th.Property(name, th.ArrayType(items))


def _cents(*names: str) -> list[th.Property]:
    """Money amounts: integers in cents of the object's currency."""
    return [th.Property(name, th.IntegerType, description="In cents.") for name in names]


def _booleans(*names: str) -> list[th.Property]:
    """Nullable boolean properties."""
    return [th.Property(name, th.BooleanType) for name in names]


def _integers(*names: str) -> list[th.Property]:
    """Nullable integer properties."""
    return [th.Property(name, th.IntegerType) for name in names]


def _datetimes(*names: str) -> list[th.Property]:
    """Nullable date-time properties."""
    return [th.Property(name, th.DateTimeType) for name in names]


def _undocumented(*names: str) -> list[th.Property]:
    """Fields Close returns (null or empty in its examples) without documenting their shape."""
    return [
        th.Property(name, ANY, description="Shape not documented by Close: any JSON value, "
                    "as JSON text.")
        for name in names
    ]


def audit(*, authors: bool = True, organization: bool = True) -> list[th.Property]:
    """The audit block: date_created, date_updated, created_by/updated_by (+ names), org id."""
    props = _datetimes("date_created", "date_updated")
    if authors:
        props += _strings("created_by", "created_by_name", "updated_by", "updated_by_name")
    if organization:
        props += _strings("organization_id")
    return props


# Authors as user ids, without names (sequences, subscriptions, playbooks).
AUTHOR_IDS: tuple[th.Property, ...] = tuple(_strings("created_by_id", "updated_by_id"))

# -- Tombstones -------------------------------------------------------------------------------

DELETED_AT = th.Property(
    "_sdc_deleted_at",
    th.DateTimeType,
    description="Set on tombstone records: when Close deleted the object",
)


def deletable(schema_dict: t.Mapping[str, t.Any]) -> JSONDict:
    """Copy of a stream schema with ``_sdc_deleted_at`` added (objects Close can delete)."""
    extended: JSONDict = copy.deepcopy(dict(schema_dict))
    extended["properties"].update(DELETED_AT.to_dict())
    return extended


# -- Fragments used by several objects --------------------------------------------------------

ATTACHMENT = th.ObjectType(
    *_strings("url", "filename", "content_type", "thumbnail_url", "media_id"),
    th.Property("size", th.IntegerType, description="Bytes."),
)
EMAIL_ADDRESS = th.ObjectType(*_strings("email", "name"))  # {email, name} pairs, identities
CUSTOM_FIELD_ASSOCIATION = th.ObjectType(  # shared custom fields: one per object type
    *_strings("object_type", "custom_activity_type_id", "custom_object_type_id"),
    _array("editable_with_roles", th.StringType),
    th.Property("required", th.BooleanType),
)
# A custom field definition, any object type; also embedded in custom activity/object types.
CUSTOM_FIELD_PROPERTIES: tuple[th.Property, ...] = (
    ID,
    *_strings("name", "description", "type", "converting_to_type"),
    *_strings("custom_activity_type_id", "custom_object_type_id", "referenced_custom_type_id"),
    _array("choices", th.StringType),
    *_booleans("accepts_multiple_values", "back_reference_is_visible", "required"),
    _array("editable_with_roles", th.StringType),
    _array("associations", CUSTOM_FIELD_ASSOCIATION),
    *audit(),
)
