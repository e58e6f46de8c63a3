"""`tap-close-doctor`: how this Close account answers where Close's docs leave it open.

About 25 read-only requests (never more than 30): who the credential is, whether it may read
the event log and its payloads, each open behaviour the tap copes with (see the README's
"What we know and assume about the Close API"), the live RateLimit per endpoint group, and
the endpoints that answer 403/402. A table, or `--json`. Never prints a secret, never writes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from tap_close import __version__
from tap_close.auth import AuthError, CloseOAuth, handle_stop_signals, redact
from tap_close.client import (
    CONNECT_TIMEOUT,
    Reply,
    new_session,
    query_string,
    read_body,
    redirect_error,
    wire_error,
)
from tap_close.errors import FatalTransportError
from tap_close.ratelimit import budgets_seen, endpoint_group, parse_ratelimit
from tap_close.streams.activities import KINDS, TASK_TYPES, spellings
from tap_close.streams.base import parse_ts
from tap_close.streams.custom_objects import EVENT_SPELLINGS
from tap_close.streams.search import search_body
from tap_close.tap import (
    DEFAULT_API_URL,
    ConfigError,
    make_authenticator,
    unknown_settings,
    validate_settings,
)
from tap_close.urls import direct

MAX_REQUESTS = 30
#: List endpoints the tap reads, probed with `_limit=1` for 403/402.
ENDPOINTS = ("/lead/", "/contact/", "/opportunity/", "/activity/", "/task/?_type=all",
             "/user/", "/custom_object_type/", "/sequence/", "/webhook/", "/group/",
             "/comment_thread/", "/shared_scheduling_link/")
URL_SIZES = (1000, 1500, 2000)
MAX_REPLY = 8 << 20  # bytes of one reply (the doctor asks for one row, or a few)


class Unreachable(Exception):
    """No HTTP reply at all from the API host."""


@dataclass
class Doctor:
    api_url: str
    auth: requests.auth.AuthBase
    session: requests.Session
    timeout: float = 60.0
    requests_made: int = 0
    rate_limits: dict[str, dict[str, float]] = field(default_factory=dict)
    calls: list[tuple[str, float, float, dict[str, float]]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    def call(self, method: str, path: str, params: dict[str, Any] | None = None,
             body: dict[str, Any] | None = None, *, retried: bool = False) -> tuple[int, Any]:
        """One request, no retry: (status, JSON body or None). Status 0: not sent."""
        if self.requests_made >= MAX_REQUESTS:
            return 0, None
        self.requests_made += 1
        url = self.api_url + path + ("?" + query_string(params) if params else "")
        # As the tap: the one session, no redirect followed, at most MAX_REPLY bytes read.
        started = time.monotonic()
        try:
            with self.session.request(
                    method, url, json=body, auth=self.auth, allow_redirects=False, stream=True,
                    proxies=direct(url),
                    timeout=(CONNECT_TIMEOUT, self.timeout),
                    headers={"User-Agent": f"tap-close-doctor/{__version__}",
                             "X-TZ-Offset": "0"}) as response:
                reply = Reply(response.status_code, response.headers,
                              read_body(response, MAX_REPLY))
                sent = response.request.headers.get("Authorization") or ""
        except FatalTransportError as exc:
            return 0, {"error": str(exc)}
        except requests.RequestException as exc:
            return 0, {"error": redact(str(wire_error(exc, self.timeout)))}
        if 300 <= reply.status < 400:
            raise ConfigError(redirect_error(reply, method, path))
        if reply.status == 401 and isinstance(self.auth, CloseOAuth) and not retried:
            self.auth.invalidate(self.auth.used_token(sent))  # a stale stored access token
            self.requests_made -= 1
            return self.call(method, path, params, body, retried=True)
        limit = parse_ratelimit(reply.headers.get("RateLimit"))
        if limit:
            self.rate_limits[endpoint_group(method, path)] = limit
            self.calls.append((endpoint_group(method, path), started, time.monotonic(), limit))
        try:
            return reply.status, reply.json()
        except ValueError:
            return reply.status, None

    def run(self) -> dict[str, Any]:
        self.identity()
        events = self.event_log()
        if events is not None:
            self.payloads_and_types(events)
            self.targeted_read(events)
            self.cursor_bound(events)
        self.activity_order()
        self.url_limit()
        self.searches()
        self.denied_endpoints()
        self.report["rate_limits"] = self.rate_limits
        self.report["rate_limit_groups"] = budgets_seen(self.calls)
        self.report["requests"] = self.requests_made
        return self.report

    def identity(self) -> None:
        status, me = self.call("GET", "/me/", {"_fields": "id,first_name,last_name,organizations"})
        if status == 0:
            parts = urlsplit(self.api_url)
            host = f"{parts.hostname}{f':{parts.port}' if parts.port else ''}"
            raise Unreachable(f"cannot reach {host}: {(me or {}).get('error')} (check api_url, "
                              "DNS, the network or proxy)")
        if status == 401:
            raise AuthError("Close rejected the credential (401): check the config's "
                            "api_key or OAuth settings.")
        me = me if status == 200 and isinstance(me, dict) else {}
        orgs = me.get("organizations") or [{}]
        self.report["auth"] = {"works": status == 200, "status": status}
        self.report["user"] = {"id": me.get("id"), "name": " ".join(
            filter(None, (me.get("first_name"), me.get("last_name"))))}
        self.report["organization"] = {"id": orgs[0].get("id"), "name": orgs[0].get("name")}

    def event_log(self) -> list[dict] | None:
        status, body = self.call("GET", "/event/", {"_limit": 50})
        self.report["event_log"] = {"access": status == 200, "status": status}
        return (body or {}).get("data") or [] if status == 200 else None

    def payloads_and_types(self, events: list[dict]) -> None:
        hour_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        status, body = self.call("GET", "/event/", {"_limit": 10,
                                                    "date_updated__lt": hour_ago.isoformat()})
        old = (body or {}).get("data") or [] if status == 200 else []
        with_payload = [e for e in old if e.get("data") or e.get("previous_data")]
        self.report["event_payloads_after_1h"] = (
            None if not old else bool(with_payload))  # False: not an admin credential
        def spellings(prefix: str) -> list[str]:
            return sorted({str(e.get("object_type")) for e in events + old
                           if str(e.get("object_id") or "").startswith(prefix)})
        self.report["activity_event_object_types"] = spellings("acti_")
        self.report["custom_object_event_object_types"] = spellings("custobj_")
        self.report["task_event_object_types"] = sorted({*spellings("task_"),
                                                         *spellings("noti_")})
        seen = {name for key in ("activity", "custom_object", "task")
                for name in self.report[f"{key}_event_object_types"]}
        # A big gap is read by object_type (targeted.py): a spelling not asked there is missed.
        self.report["event_object_types_not_asked"] = sorted(seen - asked_spellings())

    def targeted_read(self, events: list[dict]) -> None:
        """Does an `object_type`+`action` read (big gaps) find the newest event again?"""
        event = next((e for e in events if e.get("object_type") and e.get("action")), None)
        if event is None:
            self.report["event_filter_object_type_action"] = None
            return
        status, body = self.call("GET", "/event/", {
            "object_type": event["object_type"], "action": event["action"], "_limit": 50,
            "date_updated__gte": event.get("date_updated")})
        found = [e.get("id") for e in (body or {}).get("data") or []] if status == 200 else []
        self.report["event_filter_object_type_action"] = (
            "works" if event.get("id") in found
            else f"HTTP {status}" if status != 200 else "event not found by its own filter")

    def cursor_bound(self, events: list[dict]) -> None:
        """Does a cursor keep date_updated__gte? Bound at the 2nd newest event, page by 1."""
        if len(events) < 3:
            self.report["event_cursor_keeps_bound"] = None  # too few events to tell
            return
        bound = parse_ts(events[1].get("date_updated"))
        if bound is None:
            self.report["event_cursor_keeps_bound"] = None
            return
        params: dict[str, Any] = {"date_updated__gte": bound.isoformat(), "_limit": 1}
        verdict: bool | None = True
        for _ in range(3):
            status, body = self.call("GET", "/event/", params)
            if status != 200:
                verdict = None
                break
            when = [parse_ts(e.get("date_updated")) for e in body.get("data") or []]
            if any(w is not None and w < bound for w in when):
                verdict = False
                break
            if not body.get("cursor_next"):
                break
            params = {"_cursor": body["cursor_next"], "_limit": 1}
        self.report["event_cursor_keeps_bound"] = verdict

    def activity_order(self) -> None:
        """Does `/activity/call/` honour `_order_by=date_created`?"""
        status, body = self.call("GET", "/activity/call/", {
            "_order_by": "date_created", "_limit": 5, "_fields": "id,date_created"})
        parsed = [parse_ts(a.get("date_created")) for a in (body or {}).get("data") or []]
        dates = [d for d in parsed if d is not None]
        verdict: bool | str | None = None
        if status == 200 and len(set(dates)) > 1:
            verdict = dates == sorted(dates)
        elif status == 400:
            verdict = f"refused: {_said(body)}"
        self.report["activity_type_order_by_honoured"] = verdict

    def url_limit(self) -> None:
        """The longest GET URL (up to 2,000 bytes) Close accepted."""
        largest = 0
        for size in URL_SIZES:
            base = f"{self.api_url}/lead/?_limit=1&_fields=id"
            padding = ",".join(f"x{i:04d}" for i in range(max(0, size - len(base)) // 6 + 1))
            fields = ("id," + padding)[: max(2, size - len(base) + 2)]
            status, body = self.call("GET", "/lead/", {"_limit": 1, "_fields": fields})
            if status != 200:
                self.report["long_fields_refusal"] = f"HTTP {status}: {_said(body)}"
                break
            largest = size
        self.report["largest_url_accepted"] = largest

    def searches(self) -> None:
        """A date-bounded search per object type, as the tap sends it, and Close's answer."""
        now = dt.datetime.now(dt.timezone.utc)
        results, answers = {}, {}
        for object_type in ("lead", "custom_object"):
            body = search_body(object_type, "date_updated", now - dt.timedelta(days=1), now,
                               fields=["id"], limit=1)
            status, reply = self.call("POST", "/data/search/", body=body)
            results[object_type] = status
            answers[object_type] = f"HTTP {status}" + ("" if status == 200 else
                                                       f": {_said(reply)}")
        self.report["search_status"] = results
        self.report["search_answer"] = answers

    def denied_endpoints(self) -> None:
        refused = {}
        for endpoint in ENDPOINTS:
            path, _, query = endpoint.partition("?")
            params = dict(p.split("=", 1) for p in query.split("&") if p)
            status, _ = self.call("GET", path, {**params, "_limit": 1, "_fields": "id"})
            if status in (402, 403):
                refused[path] = status
        if self.report.get("event_log", {}).get("status") in (402, 403):
            refused["/event/"] = self.report["event_log"]["status"]
        self.report["refused_endpoints"] = refused


def _said(body: Any) -> str:
    """Close's error text from a reply body (short, no secrets)."""
    text = body.get("error") or body if isinstance(body, dict) else body
    return redact(str(text))[:200]


def _yes(value: Any) -> str:
    return {True: "yes", False: "no", None: "unknown"}.get(value, str(value))


def asked_spellings() -> set[str]:
    """The object_types a targeted read of a big gap asks for (targeted.py)."""
    return {*(name for kind in KINDS for name in spellings(kind)),
            *(f"task.{name}" for name in TASK_TYPES), *EVENT_SPELLINGS}


def table(report: dict[str, Any]) -> str:
    rows = [
        ("auth", f"{'works' if report['auth']['works'] else 'fails'} "
                 f"(HTTP {report['auth']['status']})"),
        ("user", f"{report['user']['name']} ({report['user']['id']})"),
        ("organization", f"{report['organization']['name']} ({report['organization']['id']})"),
        ("event log access", f"{_yes(report['event_log']['access'])} "
                             f"(HTTP {report['event_log']['status']})"),
        ("event payloads after 1 hour (admin)", _yes(report.get("event_payloads_after_1h"))),
        ("activity event object_type spellings",
         ", ".join(report.get("activity_event_object_types") or []) or "none seen"),
        ("event cursor keeps date_updated bound", _yes(report.get("event_cursor_keeps_bound"))),
        ("/activity/call/ honours _order_by", _yes(report.get("activity_type_order_by_honoured"))),
        ("largest GET URL accepted (bytes)", str(report["largest_url_accepted"])),
        ("custom object event object_type spellings",
         ", ".join(report.get("custom_object_event_object_types") or []) or "none seen"),
        ("task event object_type spellings",
         ", ".join(report.get("task_event_object_types") or []) or "none seen"),
        ("event object_types a big gap's read would miss",
         ", ".join(report.get("event_object_types_not_asked") or []) or "none seen"),
        ("event log object_type+action filter",
         report.get("event_filter_object_type_action") or "not tried (no event)"),
        ("long _fields refused", report.get("long_fields_refusal") or "no"),
        ("/data/search/ leads (date range)", report["search_answer"]["lead"]),
        ("/data/search/ custom objects (date range)", report["search_answer"]["custom_object"]),
        ("refused endpoints (403/402)",
         ", ".join(f"{p} {s}" for p, s in report["refused_endpoints"].items()) or "none"),
    ]
    rows += [(f"RateLimit {group}", f"limit={v.get('limit')} remaining={v.get('remaining')} "
                                    f"reset={v.get('reset')}"
              + (f" ({report['rate_limit_groups'][group]})"
                 if group in report.get("rate_limit_groups", {}) else ""))
             for group, v in sorted(report["rate_limits"].items())]
    rows.append(("requests made", str(report["requests"])))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def load_config(path: str) -> dict[str, Any]:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        raise ConfigError(f"--config {path}: not a readable JSON file") from None
    if not isinstance(config, dict):
        raise ConfigError(f"--config {path}: not a JSON object")
    validate_settings(config)
    for key in unknown_settings(config):  # as the tap: a typo, or a newer SDK's setting
        logging.getLogger("tap-close").warning("Unknown setting %r: ignored", key)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tap-close-doctor", description="Probe how this Close account answers the API "
        "behaviours the tap must cope with (read-only, about 25 requests).")
    parser.add_argument("--config", required=True, help="the tap's config JSON file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(message)s", stream=sys.stderr)  # the checks'
    session, auth = new_session(1), None
    try:  # WARNINGs (e.g. an api_url that is not Close's) as the ERROR lines below
        config = load_config(args.config)
        handle_stop_signals()  # a token being rotated is saved first, as in the tap
        auth = make_authenticator(config, session)  # the tap's token store and lock
        doctor = Doctor((config.get("api_url") or DEFAULT_API_URL).rstrip("/"), auth, session,
                        float(config.get("request_timeout") or 60))
        report = doctor.run()
    except (ConfigError, AuthError, Unreachable) as exc:
        print(f"ERROR {redact(str(exc))}", file=sys.stderr)
        return 1
    finally:
        if isinstance(auth, CloseOAuth):
            auth.close()  # waits for a rotation under way
        session.close()
    print(json.dumps(report, indent=2, default=str) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
