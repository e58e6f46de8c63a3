"""Shorter `_fields` for a Close that refuses a long list (`400 List is too long`).

Close documents `custom` as "all custom fields" (leads' `_fields`); an organization with
hundreds of custom fields is reported to get `400 List is too long` when each is named. A
refused list is asked again with the shorthand in place of the `custom.cf_...` names, then
without `_fields` at all (Close's default fields); the streams drop unselected keys locally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

LIST_REFUSED = re.compile(rb"list is too long|too many (fields|items)", re.I)
CUSTOM = "custom."
_ID = re.compile(r"/[a-z]+_[A-Za-z0-9]{10,}/")


def template(path: str) -> str:
    """The endpoint a refusal is remembered for: the path with object ids removed."""
    return _ID.sub("/{id}/", path)


def _shorthand(names: list[str]) -> list[str] | None:
    """`custom.cf_...` names replaced by `custom`; None when there are none."""
    if not any(n.startswith(CUSTOM) for n in names):
        return None
    return [n for n in names if not n.startswith(CUSTOM)] + ["custom"]


def all_custom(names: list[str], properties: Mapping[str, Any]) -> list[str]:
    """`names` with the shorthand when they name every custom field of the schema (the same
    thing, shorter: Close documents `custom` for leads)."""
    known = sum(1 for p in properties if p.startswith("custom_cf_"))
    asked = sum(1 for n in names if n.startswith(CUSTOM))
    return (_shorthand(names) or names) if known and asked == known else names


def shorter(params: Mapping[str, Any] | None, body: Mapping[str, Any] | None, level: int
            ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The request's `_fields` at `level` (1: the shorthand, if any, else none; 2: none), in
    query parameters (comma-separated) and in a search body (a list per object type)."""
    new_params = dict(params) if params is not None else None
    new_body = dict(body) if body is not None else None
    if new_params and new_params.get("_fields"):
        short = _shorthand(str(new_params["_fields"]).split(",")) if level == 1 else None
        if short is None:
            del new_params["_fields"]
        else:
            new_params["_fields"] = ",".join(short)
    if new_body and isinstance(new_body.get("_fields"), dict):
        lists = {k: _shorthand(list(v)) if level == 1 else None
                 for k, v in new_body["_fields"].items()}
        if all(v is not None for v in lists.values()):
            new_body["_fields"] = lists
        else:
            del new_body["_fields"]
    return new_params, new_body


def has_fields(params: Mapping[str, Any] | None, body: Mapping[str, Any] | None) -> bool:
    return bool((params or {}).get("_fields") or (body or {}).get("_fields"))
