"""CloseEmulator: the public entry point tying dataset, API, OAuth, faults and server together."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from types import TracebackType
from typing import Any

from .api import Api
from .apibase import check_quirks
from .data import Dataset
from .faults import FAULT_KINDS, FaultPlan, RateLimiter
from .oauth import TokenStore
from .server import EmuServer, Engine

CF_STREAMS = {
    "lead": "lead_custom_fields",
    "contact": "contact_custom_fields",
    "opportunity": "opportunity_custom_fields",
}


class CloseEmulator:
    """A local fake of the Close REST API (read endpoints, OAuth token endpoint, event log)."""

    def __init__(
        self,
        seed: int = 1,
        n_leads: int = 60,
        n_users: int = 4,
        *,
        api_key: str = "api_emulator_key",
        client_id: str = "emu_client",
        client_secret: str = "emu_secret",  # noqa: S107 - test fixture value
        access_token_ttl: float = 3600.0,
        latency: float = 0.0,
        max_skip: int | dict[str, int] | None = None,
        max_limit: dict[str, int] | None = None,
        rate_limit: tuple[int, float] | None = None,
        rate_groups: str = "segment",
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        fault_kinds: Iterable[str] = FAULT_KINDS,
        slow_seconds: float = 3.0,
        host: str = "127.0.0.1",
        port: int = 0,
        event_payloads: bool = True,
        denied: Iterable[str] = (),
        plan_limited: Iterable[str] = (),
        event_history: int = 0,
        compress: bool = False,
        quirks: Iterable[str] = (),
        search_cap: int = 10_000,
        max_url_bytes: int | None = None,
        url_limit_status: int = 414,
        extra_custom_fields: int = 0,
        method_override: bool = True,
        clock_offset: float = 0.0,
        commit_lag: float = 0.0,
        future_share: float = 0.0,
        future_hours: float = 3.0,
    ) -> None:
        self.api_key = api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.data = Dataset(seed, n_leads, n_users)
        self.data.quirks = check_quirks(quirks)
        # a busy, real server: its clock runs `clock_offset` seconds off the tap's (stamps,
        # `Date` header); a written row shows in lists `commit_lag` seconds later (lag.py);
        # `future_share` of new leads/activities are dated `future_hours` ahead
        self.data.clock.offset = timedelta(seconds=clock_offset)
        self.data.commit_lag = commit_lag
        self.data.future_share, self.data.future_hours = future_share, future_hours
        if event_history:
            self.data.seed_event_history(event_history)
        if extra_custom_fields:
            _more_custom_fields(self.data, extra_custom_fields)
        self.oauth = TokenStore(
            client_id, client_secret, access_token_ttl, self.data.org_id, self.data.user_ids[0]
        )
        self.faults = FaultPlan(fault_rate, fault_seed, fault_kinds)
        limiter = RateLimiter(*rate_limit, groups=rate_groups) if rate_limit else None
        self.engine = Engine(
            Api(
                self.data,
                max_skip,
                max_limit,
                event_payloads=event_payloads,
                denied=denied,
                plan_limited=plan_limited,
            ),
            self.oauth,
            self.faults,
            limiter,
            api_key=api_key,
            latency=latency,
            slow_seconds=slow_seconds,
            max_url_bytes=max_url_bytes,
            url_limit_status=url_limit_status,
            method_override=method_override,
        )
        self.engine.api.search_cap = search_cap  # /data/search/ results per cursor sequence
        self._address = (host, port)
        self.compress = compress
        self._server: EmuServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> CloseEmulator:
        if self._server is None:
            self._server = EmuServer(self._address, self.engine, self.compress)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="close-emulator",
                daemon=True,
            )
            self._thread.start()
            self.engine.api.base_url = self.url  # export download URLs
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> CloseEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/v1"

    @property
    def token_url(self) -> str:
        return self.url + "/oauth2/token/"

    # --- OAuth --------------------------------------------------------------------------------

    def issue_refresh_token(self) -> str:
        return self.oauth.issue_refresh_token()

    def issue_auth_code(self, redirect_uri: str | None = None, code: str = "") -> str:
        return self.oauth.issue_auth_code(redirect_uri, code)

    @property
    def current_refresh_tokens(self) -> set[str]:
        return self.oauth.current_refresh_tokens

    def revoke_refresh_token(self, token: str) -> None:
        self.oauth.revoke(token)

    # --- faults, stats, log -------------------------------------------------------------------

    def before_request(self, hook: Callable[[str, str, dict[str, str]], None]) -> None:
        """Call `hook(method, path, params)` before answering each /api/v1 request (a test
        changes data at a chosen point of a sync: a change between two given reads)."""
        self.engine.hooks.append(hook)

    def inject(self, kinds: Iterable[str], path_prefix: str = "/api/v1/") -> None:
        self.faults.inject(kinds, path_prefix)

    @property
    def stats(self) -> dict[str, Any]:
        return self.engine.stats()

    @property
    def request_log(self) -> list[dict[str, Any]]:
        with self.engine._lock:
            return [dict(entry) for entry in self.engine.log]

    # --- truth --------------------------------------------------------------------------------

    @property
    def organization_id(self) -> str:
        return self.data.org_id

    @property
    def events(self) -> list[dict[str, Any]]:
        """Event log, oldest first (newest last)."""
        with self.data.lock:
            return copy.deepcopy(self.data.events)

    def truth(self, stream_name: str) -> set[str]:
        return self.data.truth(stream_name)

    def records(self, stream_name: str) -> list[dict[str, Any]]:
        return self.data.records(stream_name)

    def custom_fields(self, object_type: str) -> list[dict[str, Any]]:
        return self.data.records(CF_STREAMS[object_type])

    # --- mutations (each also appends Close-style events) -------------------------------------

    def update_lead(self, lead_id: str) -> None:
        self.data.update_lead(lead_id)

    def update_contact(self, contact_id: str) -> None:
        self.data.update_contact(contact_id)

    def update_opportunity(self, opp_id: str) -> None:
        self.data.update_opportunity(opp_id)

    def add_lead(self, ahead: float | None = None) -> str:
        """A new lead (with contacts, maybe an opportunity); `ahead`: dated hours ahead."""
        return self.data.add_lead(ahead)

    def add_contact(self, lead_id: str) -> str:
        return self.data.add_contact(lead_id)

    def add_opportunity(self, lead_id: str) -> str:
        return self.data.add_opportunity(lead_id)

    def delete_lead(self, lead_id: str) -> None:
        self.data.delete_lead(lead_id)

    def delete_contact(self, contact_id: str) -> None:
        self.data.delete_contact(contact_id)

    def delete_opportunity(self, opp_id: str) -> None:
        self.data.delete_opportunity(opp_id)

    def merge_leads(self, source_id: str, destination_id: str) -> None:
        self.data.merge_leads(source_id, destination_id)

    # activities and tasks: kinds are the /activity/ endpoint names (ACTIVITY_KINDS)

    def add_activity(
        self, kind: str, lead_id: str | None = None, ahead: float | None = None
    ) -> str:
        return self.data.add_activity(kind, lead_id, ahead)

    def update_activity(self, activity_id: str) -> None:
        self.data.update_activity(activity_id)

    def delete_activity(self, activity_id: str) -> None:
        self.data.delete_activity(activity_id)

    def add_task(self, lead_id: str, _type: str = "lead") -> str:
        return self.data.add_task(lead_id, _type)

    def update_task(self, task_id: str) -> None:
        self.data.update_task(task_id)

    def complete_task(self, task_id: str) -> str:
        """Complete a task; returns the id of the TaskCompleted activity it creates."""
        return self.data.complete_task(task_id)

    def delete_task(self, task_id: str) -> None:
        self.data.delete_task(task_id)

    def delete_object(self, kind: str, obj_id: str) -> None:
        """Delete an org-level object; `kind` is a truth name ("webhooks"), API path ("webhook")
        or event object_type. Unsubscribed emails are keyed by the email."""
        self.data.delete_object(kind, obj_id)

    def add_custom_object(self, lead_id: str) -> str:
        return self.data.add_custom_object(lead_id)

    def update_custom_object(self, obj_id: str) -> None:
        self.data.update_custom_object(obj_id)

    # --- bad data -----------------------------------------------------------------------------

    def tamper(
        self, stream: str, obj_id: str, changes: dict[str, Any] | None = None,
        drop: Iterable[str] = (),
    ) -> None:
        """Serve an object as a misbehaving API would: `changes` applied (None = null), the
        keys in `drop` missing. Stored copy-on-write; no event is logged. `stream` is a truth
        name (leads, contacts, opportunities, tasks, an activity stream or an object stream)."""
        d = self.data
        with d.lock:
            stores = {"leads": d.leads, "contacts": d.contacts, "opportunities": d.opps,
                      "tasks": d.acts.tasks}
            store: Any = stores.get(stream) or (d.acts.items if obj_id in d.acts.items else None)
            if store is None:
                items = d.objects.kinds[stream]
                store = {i: o for i, o in enumerate(items) if o.get("id") == obj_id}
                index = next(iter(store))
                new = {k: v for k, v in items[index].items() if k not in drop}
                items[index] = {**new, **(changes or {})}
            else:
                new = {k: v for k, v in store[obj_id].items() if k not in drop}
                store[obj_id] = {**new, **(changes or {})}
            d._views.clear()
            d._sorted.clear()
            d.acts._sorted.clear()


def _more_custom_fields(data: Dataset, n: int) -> None:
    """`n` more text custom fields on leads, contacts and opportunities (an org with many:
    ~56 bytes of `_fields` each), with Close-length ids; later edits fill them in."""
    for obj_type in CF_STREAMS:
        defs = data.cfields[obj_type]
        template = {**defs[0], "type": "text", "choices": None, "accepts_multiple_values": False}
        for i in range(n):
            field_id = f"cf_{obj_type[:3]}{i:04d}".ljust(46, "x")
            defs.append({**template, "id": field_id, "name": f"Extra {obj_type} field {i}"})
