"""A busy CRM for the issue 19 tests: a background writer, a target simulator, a comparison.

`Writer` drives the emulator's own change methods (the same ones the control endpoint uses,
each logging its Close events) from a thread, one seeded change every 0.05-0.15 s, until
stopped. `Target` loads runs' Singer messages the way a target does. `differences` compares
what the target holds with the emulator's truth, ids and field values, in every stream.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from tests.emulator import CloseEmulator
from tests.emulator.timeutil import parse_dt
from tests.harness import singer_messages

Obj = dict[str, Any]

#: activity kinds the writer creates (custom = custom activity instances)
KINDS = ("note", "call", "email", "emailthread", "meeting", "sms", "whatsapp_message", "custom")
MIN_LEADS = 8  # deletes and merges stop at this many leads


class Writer:
    """Seeded changes to leads, contacts, opportunities, activities and tasks in a thread."""

    def __init__(self, emu: CloseEmulator, seed: int, pause: tuple[float, float] = (0.05, 0.15),
                 future: float = 0.0) -> None:
        self.emu, self.data = emu, emu.data
        self.rng = random.Random(f"writer-{seed}")
        self.pause = pause
        self.future = future  # share of new leads/activities dated 3 hours ahead
        self.done = Counter[str]()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="busy-writer", daemon=True)
        ops: dict[str, tuple[int, Callable[[], object]]] = {
            "update_lead": (6, lambda: emu.update_lead(self._pick(self.data.leads))),
            "add_lead": (2, lambda: emu.add_lead(self._ahead())),
            "delete_lead": (1, self._delete_lead),
            "merge_leads": (1, self._merge),
            "update_contact": (4, lambda: emu.update_contact(self._pick(self.data.contacts))),
            "add_contact": (2, lambda: emu.add_contact(self._pick(self.data.leads))),
            "delete_contact": (1, lambda: emu.delete_contact(self._pick(self.data.contacts))),
            "update_opportunity": (3, lambda: emu.update_opportunity(self._pick(self.data.opps))),
            "add_opportunity": (2, lambda: emu.add_opportunity(self._pick(self.data.leads))),
            "delete_opportunity": (1, lambda: emu.delete_opportunity(self._pick(self.data.opps))),
            "add_activity": (6, lambda: emu.add_activity(
                self.rng.choice(KINDS), self._pick(self.data.leads), self._ahead())),
            "update_activity": (4, lambda: emu.update_activity(self._pick(self.data.acts.items))),
            "delete_activity": (1, lambda: emu.delete_activity(self._pick(self.data.acts.items))),
            "add_task": (2, lambda: emu.add_task(self._pick(self.data.leads))),
            "update_task": (2, lambda: emu.update_task(self._pick(self.data.acts.tasks))),
            "complete_task": (2, self._complete_task),
            "delete_task": (1, lambda: emu.delete_task(self._pick(self.data.acts.tasks))),
        }
        self._ops = ops
        self._names = list(ops)
        self._weights = [w for w, _ in ops.values()]

    # --- choices (under the dataset's lock: the tap reads meanwhile) ---------------------------

    def _pick(self, store: dict[str, Any]) -> str:
        return self.rng.choice(sorted(store))

    def _ahead(self) -> float | None:
        return 3.0 if self.future and self.rng.random() < self.future else None

    def _delete_lead(self) -> None:
        if len(self.data.leads) > MIN_LEADS:
            self.emu.delete_lead(self._pick(self.data.leads))

    def _merge(self) -> None:
        if len(self.data.leads) > MIN_LEADS:
            source, dest = self.rng.sample(sorted(self.data.leads), 2)
            self.emu.merge_leads(source, dest)

    def _complete_task(self) -> None:
        open_tasks = [t for t, task in sorted(self.data.acts.tasks.items())
                      if not task["is_complete"]]
        if open_tasks:
            self.emu.complete_task(self.rng.choice(open_tasks))

    # --- running ----------------------------------------------------------------------------

    def step(self) -> str:
        """One change; returns its name."""
        name = self.rng.choices(self._names, self._weights)[0]
        with self.data.lock:
            try:
                self._ops[name][1]()
            except IndexError:  # nothing of that kind left to pick
                name = "skipped"
        self.done[name] += 1
        return name

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.rng.uniform(*self.pause)):
                self.step()
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> Counter[str]:
        """Stop and wait; the changes made (raises what the thread raised)."""
        self._stop.set()
        self._thread.join(timeout=10)
        if self.error is not None:
            raise self.error
        return self.done

    def __enter__(self) -> Writer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --- the target ------------------------------------------------------------------------------


class Target:
    """Rows a Singer target holds: RECORDs upsert by key in order, a record with
    `_sdc_deleted_at` deletes, ACTIVATE_VERSION drops the rows of older versions."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[tuple, tuple[Obj, Any]]] = {}
        self.keys: dict[str, list[str]] = {}

    def load(self, stdout: str) -> Target:
        for msg in singer_messages(stdout):
            kind, stream = msg.get("type"), msg.get("stream")
            if kind == "SCHEMA":
                self.keys[stream] = msg.get("key_properties") or ["id"]
                self.rows.setdefault(stream, {})
            elif kind == "RECORD":
                rows = self.rows.setdefault(stream, {})
                record = msg["record"]
                pk = tuple(record.get(k) for k in self.keys.get(stream, ["id"]))
                if record.get("_sdc_deleted_at"):
                    rows.pop(pk, None)
                else:
                    rows[pk] = (record, msg.get("version"))
            elif kind == "ACTIVATE_VERSION":
                rows = self.rows.setdefault(stream, {})
                for pk in [pk for pk, (_, v) in rows.items() if v != msg["version"]]:
                    del rows[pk]
        return self

    def records(self, stream: str) -> dict[str, Obj]:
        """Held rows of a stream by their (single) key."""
        return {pk[0]: row for pk, (row, _) in self.rows.get(stream, {}).items()}

    @property
    def streams(self) -> list[str]:
        return sorted(self.rows)


# --- truth and comparison --------------------------------------------------------------------

STAMP = re.compile(r"^\d{4}-\d\d-\d\d([T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?)?$")


def key_of(stream: str) -> str:
    return "email" if stream == "unsubscribed_emails" else "id"


def truth_rows(emu: CloseEmulator, stream: str, last_start: datetime) -> dict[str, Obj]:
    """What Close holds, as the tap should have it after a run started at `last_start` (real
    time): the `events` stream leaves out the last 5 minutes; Close shows only the caller's
    send-as associations."""
    rows = emu.records(stream)
    if stream == "events":
        cutoff = (last_start - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
        rows = [e for e in rows if e["date_updated"] < cutoff]
    elif stream == "send_as":
        me = emu.data.user_ids[0]
        rows = [r for r in rows if me in (r["allowing_user_id"], r["allowed_user_id"])]
    return {r[key_of(stream)]: r for r in rows}


def _same(held: Any, true: Any) -> bool:
    """Equal as the tap emits Close's value: timestamps in any offset form (a plain date as
    midnight UTC), free-form custom values as JSON text."""
    if held == true:
        return True
    if isinstance(held, str) and isinstance(true, str) and STAMP.match(held) and STAMP.match(true):
        return parse_dt(held) == parse_dt(true)
    if isinstance(held, str) and (not isinstance(true, str) or held.startswith('"')):
        try:
            return bool(json.loads(held) == true)
        except ValueError:
            return False
    return False


def field_differences(stream: str, held: Obj, true: Obj) -> list[str]:
    """Scalar fields of Close's object whose value the target holds differently (custom
    `custom.X` is the column `custom_X`; fields the tap does not emit are not compared)."""
    out = []
    for name, value in true.items():
        column = "custom_" + name.removeprefix("custom.") if name.startswith("custom.") else name
        if column not in held or isinstance(value, (dict, list)):
            continue
        if not _same(held[column], value):
            out.append(f"{name}: target {held[column]!r} != Close {value!r}")
    return out


def differences(target: Target, emu: CloseEmulator, last_start: datetime,
                streams: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Per stream: ids missing from the target, extra ids, and fields of differing value."""
    out: dict[str, list[str]] = {}
    for stream in streams if streams is not None else target.streams:
        held = target.records(stream)
        true = truth_rows(emu, stream, last_start)
        problems = []
        missing, extra = sorted(true.keys() - held.keys()), sorted(held.keys() - true.keys())
        if missing:
            problems.append(f"{len(missing)} missing: {missing[:6]}")
        if extra:
            problems.append(f"{len(extra)} extra: {extra[:6]}")
        stale = {k: d for k in sorted(true.keys() & held.keys())
                 if (d := field_differences(stream, held[k], true[k]))}
        if stale:
            first = next(iter(stale))
            problems.append(f"{len(stale)} with other values, e.g. {first}: {stale[first][:2]}")
        if problems:
            out[stream] = problems
    return out
