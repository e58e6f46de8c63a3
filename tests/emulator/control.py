"""Control endpoint: change the emulator's data over HTTP (no auth; the emulator is local).

Paths below /_emulator/ (JSON bodies optional; every change logs Close-style events):

    GET    /_emulator/                      the emulator's clock and record counts per stream
    GET    /_emulator/<stream>              ids of a stream (leads, contacts, note_activities, ...)
    POST   /_emulator/leads                 add a lead (with contacts)             -> {"id": ...}
    PUT    /_emulator/leads/<id>            edit it (description, status, a custom field)
    DELETE /_emulator/leads/<id>            delete it (and its contacts, opportunities, ...)
    POST   /_emulator/leads/<id>/merge      merge it into {"into": "<lead id>"}
    POST   /_emulator/contacts              add one to {"lead_id": ...} (default: the first lead)
    PUT    /_emulator/contacts/<id>         edit its title;  DELETE: delete it
    POST   /_emulator/opportunities         like contacts;  PUT: new value;  DELETE
    POST   /_emulator/activities            add {"type": "note", "lead_id": ...} (call, email, ...)
    PUT    /_emulator/activities/<id>       edit it;  DELETE: delete it
    POST   /_emulator/tasks                 add one to {"lead_id": ...};  PUT, DELETE
    POST   /_emulator/tasks/<id>/complete   complete it (adds a task_completed activity)
    POST   /_emulator/clock                 move the clock by {"minutes": N} (may be negative)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from .data import STREAMS, Dataset
from .timeutil import fmt_aware

PREFIX = "/_emulator"
Obj = dict[str, Any]


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def handle(data: Dataset, method: str, path: str, body: bytes) -> tuple[int, Obj]:
    """One control request (`path` below /_emulator); returns (HTTP status, JSON body)."""
    try:
        payload = json.loads(body) if body.strip() else {}
        if not isinstance(payload, dict):
            raise ControlError(400, "the body must be a JSON object")
        seg = [s for s in path.split("/") if s]
        with data.lock:
            return 200, _route(data, method, seg, payload)
    except ValueError as exc:  # bad JSON, unknown activity type, merge into itself
        return 400, {"error": str(exc)}
    except KeyError as exc:
        return 404, {"error": f"not found: {exc.args[0] if exc.args else ''}"}
    except ControlError as exc:
        return exc.status, {"error": str(exc), "usage": __doc__}


def _first_lead(data: Dataset, payload: Obj) -> str:
    lead_id = payload.get("lead_id") or min(data.leads)
    if lead_id not in data.leads:
        raise KeyError(lead_id)
    return str(lead_id)


def _route(data: Dataset, method: str, seg: list[str], payload: Obj) -> Obj:
    if method == "GET" and not seg:
        return {"now": fmt_aware(data.clock.now()),
                "streams": {s: len(data.truth(s)) for s in STREAMS}}
    if method == "GET" and len(seg) == 1:
        if seg[0] not in STREAMS:
            raise ControlError(404, f"unknown stream {seg[0]!r}")
        return {"ids": sorted(data.truth(seg[0]))}
    if seg == ["clock"] and method == "POST":
        minutes = payload.get("minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)):
            raise ControlError(400, 'the body must be {"minutes": <number>}')
        data.clock.offset += dt.timedelta(minutes=minutes)
        return {"now": fmt_aware(data.clock.now())}
    kind, rest = (seg[0], seg[1:]) if seg else ("", [])
    actions = CHANGES.get(kind)
    if actions is None:
        raise ControlError(404, f"unknown path /{'/'.join(seg)}")
    key = (method, len(rest), rest[1] if len(rest) > 1 else "")
    action = actions.get(key)
    if action is None:
        raise ControlError(405, f"{method} /{'/'.join(seg)} is not a change the emulator knows")
    result = action(data, rest[0] if rest else "", payload)
    return {"id": result} if isinstance(result, str) else {"ok": True}


Action = Callable[[Dataset, str, Obj], Any]


def _require(obj_id: str, store: dict[str, Any]) -> str:
    if obj_id not in store:
        raise KeyError(obj_id)
    return obj_id


CHANGES: dict[str, dict[tuple[str, int, str], Action]] = {
    "leads": {
        ("POST", 0, ""): lambda d, _, p: d.add_lead(),
        ("PUT", 1, ""): lambda d, i, p: d.update_lead(_require(i, d.leads)),
        ("DELETE", 1, ""): lambda d, i, p: d.delete_lead(_require(i, d.leads)),
        ("POST", 2, "merge"): lambda d, i, p: d.merge_leads(
            _require(i, d.leads), _require(str(p.get("into")), d.leads)),
    },
    "contacts": {
        ("POST", 0, ""): lambda d, _, p: d.add_contact(_first_lead(d, p)),
        ("PUT", 1, ""): lambda d, i, p: d.update_contact(_require(i, d.contacts)),
        ("DELETE", 1, ""): lambda d, i, p: d.delete_contact(_require(i, d.contacts)),
    },
    "opportunities": {
        ("POST", 0, ""): lambda d, _, p: d.add_opportunity(_first_lead(d, p)),
        ("PUT", 1, ""): lambda d, i, p: d.update_opportunity(_require(i, d.opps)),
        ("DELETE", 1, ""): lambda d, i, p: d.delete_opportunity(_require(i, d.opps)),
    },
    "activities": {
        ("POST", 0, ""): lambda d, _, p: d.add_activity(
            str(p.get("type") or "note"), _first_lead(d, p) if p.get("lead_id") else None),
        ("PUT", 1, ""): lambda d, i, p: d.update_activity(_require(i, d.acts.items)),
        ("DELETE", 1, ""): lambda d, i, p: d.delete_activity(_require(i, d.acts.items)),
    },
    "tasks": {
        ("POST", 0, ""): lambda d, _, p: d.add_task(_first_lead(d, p)),
        ("PUT", 1, ""): lambda d, i, p: d.update_task(_require(i, d.acts.tasks)),
        ("DELETE", 1, ""): lambda d, i, p: d.delete_task(_require(i, d.acts.tasks)),
        ("POST", 2, "complete"): lambda d, i, p: d.complete_task(_require(i, d.acts.tasks)),
    },
}
