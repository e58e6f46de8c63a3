"""tap-close: config, authentication and the stream list."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import io
import json
import logging
import math
import re
import signal
import sys
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import click
import requests
from requests.auth import AuthBase
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.contrib.msgspec import encoder as sdk_encoder
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib import Message, RecordMessage

from tap_close import __version__, parallel
from tap_close.auth import (
    DEFAULT_TOKEN_URL,
    AuthError,
    CloseOAuth,
    api_key_auth,
    defer_signal,
    handle_stop_signals,
    redact,
)
from tap_close.client import CloseClient, id_path, new_session
from tap_close.errors import AccessDeniedError, CloseAPIError
from tap_close.maps import missing_map_config
from tap_close.parallel import Prefetcher
from tap_close.sdk_compat import SYNCING, TapHooks, environment_config
from tap_close.stores import check_store_url, open_store, url_scheme
from tap_close.stores.urls import postgres_url
from tap_close.streams import STREAM_TYPES
from tap_close.streams.base import parse_ts
from tap_close.streams.changes import POSITION, EventReplay
from tap_close.streams.eventscan import EventScan
from tap_close.urls import host_of, url_problem

DEFAULT_API_URL = "https://api.close.com/api/v1"
READ_AHEAD_PER_WORKER = 512 * 1024  # response bytes read ahead and not yet written
DEFAULT_CONCURRENCY = 16
FUTURE_MARGIN = dt.timedelta(hours=1)  # a bookmark further ahead of our clock is warned of
OAUTH_KEYS = ("client_id", "client_secret", "refresh_token")
STRING_KEYS = (
    "api_key", *OAUTH_KEYS, "oauth_scopes", "token_store", "token_store_path", "start_date",
    "api_url", "rate_limit_store",
    "oauth_token_url", "user_agent",
)
BOOLEAN_KEYS = ("track_deletes", "use_export_for_backfill", "emit_activate_version_messages")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_warned: set[tuple[str, str]] = set()  # (setting, host) already warned about


#: Objects whose custom fields come from a list of every type's fields.
LISTED_FIELDS = {
    "activity": "/custom_field/activity/",
    "custom_object": "/custom_field/custom_object_type/",
}
#: ... plus the shared fields associated with one of their types (`associations`).
SHARED_ASSOCIATION = {"activity": "custom_activity_type", "custom_object": "custom_object_type"}


class ConfigError(Exception):
    """A bad setting; the message names the setting, never its value."""


def _json_types(prop: dict[str, Any]) -> set[str]:
    kind = prop.get("type")
    return {kind} if isinstance(kind, str) else set(kind or ())


def _check_url(config: dict[str, Any], key: str) -> None:
    """https, or plain http to a loopback host (a local proxy or test server); a host that is
    not Close's gets one WARNING (credentials go to it)."""
    url = str(config.get(key) or "")
    problem = url_problem(url, key)
    if problem:
        raise ConfigError(problem)
    host = host_of(url)
    if host != "close.com" and not host.endswith(".close.com") and (key, host) not in _warned:
        _warned.add((key, host))
        logging.getLogger("tap-close").warning(
            "%s points at %s, not a Close host (*.close.com): credentials are sent there.",
            key, host)


def unknown_settings(config: dict[str, Any]) -> list[str]:
    """Keys that are neither the tap's settings nor the SDK's built-in ones (this SDK's)."""
    schema = SETTINGS.to_dict()
    TapClose.append_builtin_config(schema)
    return sorted(k for k in config if k not in schema["properties"])


def validate_settings(config: dict[str, Any]) -> None:
    """Check the settings before anything else looks at them, without echoing values."""
    for key in STRING_KEYS:
        if key in config and config[key] is not None and not isinstance(config[key], str):
            raise ConfigError(f"{key} must be a string")
    present = {k for k in ("api_key", *OAUTH_KEYS) if (config.get(k) or "").strip()}
    oauth = present & set(OAUTH_KEYS)
    if "api_key" in present and oauth:
        found = ", ".join(sorted(oauth))
        msg = f"Configure either api_key or OAuth, not both (found api_key and {found})"
        raise ConfigError(msg)
    if not present:
        msg = "No credentials: set api_key, or client_id + client_secret + refresh_token"
        raise ConfigError(msg)
    if oauth and oauth != set(OAUTH_KEYS):
        missing = [k for k in OAUTH_KEYS if k not in oauth]
        raise ConfigError(f"Incomplete OAuth settings: missing {', '.join(missing)}")
    for key in sorted(present):  # a pasted secret with a line break fails in odd ways later
        if config[key] != config[key].strip() or _CONTROL.search(config[key]):
            raise ConfigError(f"{key} has leading/trailing spaces or control characters")
    if _CONTROL.search(config.get("user_agent") or ""):
        raise ConfigError("user_agent must not contain line breaks or control characters")
    if config.get("token_store_path") is not None and not config["token_store_path"].strip():
        raise ConfigError("token_store_path is empty: set a file path, or remove it for the "
                          "default location")
    store = config.get("token_store")
    if store is not None:
        try:
            check_store_url(store)
        except AuthError as exc:
            raise ConfigError(str(exc)) from None
    if store and config.get("token_store_path"):
        raise ConfigError("Set token_store or token_store_path, not both")
    if config.get("rate_limit_store"):  # "": off
        check_budget_store(config["rate_limit_store"])
    for key in BOOLEAN_KEYS:
        if config.get(key) is not None and not isinstance(config[key], bool):
            raise ConfigError(f"{key} must be true or false")
    if config.get("start_date") is not None:
        try:
            start = dt.datetime.fromisoformat(str(config["start_date"]).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError("start_date must be an ISO 8601 date or date-time") from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.timezone.utc)
        if start > dt.datetime.now(dt.timezone.utc):
            raise ConfigError("start_date is in the future")
    for key in ("api_url", "oauth_token_url"):
        if config.get(key) is not None:
            _check_url(config, key)
    workers = config.get("max_concurrency")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64
    ):
        raise ConfigError("max_concurrency must be a whole number from 1 to 64")
    minutes = config.get("lookback_minutes")
    if minutes is not None and (
        isinstance(minutes, bool) or not isinstance(minutes, (int, float, Decimal))
        or not 0 <= minutes <= 1440
    ):
        raise ConfigError("lookback_minutes must be a number of minutes from 0 to 1440")
    timeout = config.get("request_timeout")  # the SDK reads JSON decimals as Decimal
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float, Decimal))
        or not timeout > 0 or not math.isfinite(timeout)
    ):
        raise ConfigError("request_timeout must be a positive number of seconds")


#: The tap's own settings (the SDK appends its built-in ones to config_jsonschema).
SETTINGS = th.PropertiesList(
    th.Property("api_key", th.StringType, secret=True, title="API key",
                description="Close API key (HTTP Basic, key as username). Use this "
                "or the OAuth settings."),
    th.Property("client_id", th.StringType, title="OAuth client ID",
                description="Client ID of your Close OAuth app."),
    th.Property("client_secret", th.StringType, secret=True, title="OAuth client secret",
                description="Client secret of your Close OAuth app."),
    th.Property("refresh_token", th.StringType, secret=True, title="OAuth refresh token",
                description="Refresh token from `tap-close-auth`. Close rotates it on "
                "every refresh; the newest one is kept in the token store."),
    th.Property("oauth_scopes", th.StringType, title="OAuth scopes",
                description="Space-separated scopes sent with token requests "
                "(default: none, the app's defaults)."),
    th.Property("token_store", th.StringType, secret=True, title="Token store",
                description="Where the latest rotated refresh token is kept, as a URL: "
                "file:///path.json, postgresql://user@host/db?table=tap_close_tokens (extra "
                "`postgres`) or s3://bucket/key?endpoint_url=... (extra `s3`). Default: a "
                "file per client id and chain under $XDG_STATE_HOME/tap-close/ or "
                "~/.local/state/tap-close/."),
    th.Property("token_store_path", th.StringType, title="Token store path",
                description="File form of token_store (a plain path); set one of the two."),
    th.Property("rate_limit_store", th.StringType, secret=True, title="Rate-limit store",
                description="Jobs on several machines with one organization and credential "
                "share Close's rate-limit budget through this PostgreSQL database, as a URL: "
                "postgresql://user@host/db?table=tap_close_budgets (extra `postgres`). With "
                "a postgresql:// token_store its database is used unless this is set (empty: "
                "none). Jobs on one machine share it without this."),
    th.Property("start_date", th.DateTimeType, title="Start date",
                description="Earliest date_updated/date_created to extract (ISO 8601). "
                "Default: everything."),
    th.Property("api_url", th.StringType, default=DEFAULT_API_URL, title="API URL",
                description="Base URL of the Close API."),
    th.Property("oauth_token_url", th.StringType, default=DEFAULT_TOKEN_URL,
                title="OAuth token URL", description="Close's OAuth token endpoint."),
    th.Property("user_agent", th.StringType, title="User agent",
                description="User-Agent header sent to Close."),
    th.Property("request_timeout", th.NumberType, default=300, title="Request timeout",
                description="Seconds to wait for one HTTP response before retrying."),
    th.Property("max_concurrency", th.IntegerType, default=DEFAULT_CONCURRENCY,
                title="Max concurrency",
                description="Requests in flight at once (date windows, pages, fan-outs, and "
                "the next streams read ahead), always within Close's rate limits. 1 = "
                "sequential."),
    th.Property("lookback_minutes", th.NumberType, default=5, title="Lookback (minutes)",
                description="Each incremental run re-reads this many minutes below its "
                "bookmark, for rows Close committed late or stamped with a clock behind ours; "
                "rows the last run sent there unchanged are skipped. 0 = none."),
    th.Property("use_export_for_backfill", th.BooleanType, default=False,
                title="Use the Export API for the first load",
                description="When leads have no bookmark, load them (with their contacts) from "
                "one Close lead export instead of paging; falls back to paging on failure."),
    th.Property("track_deletes", th.BooleanType, default=True, title="Track deletes",
                description="Emit tombstone records (with `_sdc_deleted_at`) for objects "
                "deleted in Close, from the event log."),
    th.Property("reconcile_every_days", th.NumberType, title="Reconcile every N days",
                description="Re-read each incremental stream in full every N days as a new "
                "table version, ending with ACTIVATE_VERSION, so that targets that honour it "
                "drop rows whose deletes Close does not log. Off when unset."),
    # The SDK's own setting, declared here for its default (the SDK's is false).
    th.Property("emit_activate_version_messages", th.BooleanType, default=True,
                title="Emit ACTIVATE_VERSION messages",
                description="Send ACTIVATE_VERSION messages for full-table streams, so that "
                "targets can mark rows that vanished from Close."),
)


def check_budget_store(url: str) -> None:
    """ConfigError (naming nothing from the URL) unless `url` is a usable rate_limit_store."""
    if url_scheme(url) not in ("postgresql", "postgres"):
        raise ConfigError("rate_limit_store must be a postgresql:// URL")
    try:
        postgres_url(url, "rate_limit_store", "tap_close_budgets")
    except AuthError as exc:
        raise ConfigError(str(exc)) from None
    try:
        import psycopg  # noqa: F401, PLC0415 - the `postgres` extra
    except ImportError:
        raise ConfigError("rate_limit_store needs the `postgres` extra: "
                          "pip install 'tap-close[postgres]'") from None


def budget_store(cfg: Mapping[str, Any]) -> tuple[str, str] | None:
    """Where rate-limit budgets are shared across machines: (URL, setting), or None (this
    machine's files only). `rate_limit_store` ("": none), else a PostgreSQL token store's
    database."""
    if cfg.get("rate_limit_store") is not None:
        return (cfg["rate_limit_store"], "rate_limit_store") if cfg["rate_limit_store"] else None
    store = cfg.get("token_store")
    if store and not cfg.get("api_key") and url_scheme(store) in ("postgresql", "postgres"):
        return store, "token_store"
    return None


def make_authenticator(cfg: Mapping[str, Any], session: requests.Session) -> AuthBase:
    """The API key's or the OAuth chain's authenticator (the tap's, and the doctor's: the same
    token store, lock and rotation rules)."""
    if cfg.get("api_key"):
        return api_key_auth(cfg["api_key"])
    store = open_store(client_id=cfg["client_id"], refresh_token=cfg["refresh_token"],
                       url=cfg.get("token_store"), path=cfg.get("token_store_path"))
    return CloseOAuth(
        client_id=cfg["client_id"],
        client_secret=cfg["client_secret"],
        refresh_token=cfg["refresh_token"],
        store=store,
        token_url=cfg.get("oauth_token_url") or DEFAULT_TOKEN_URL,
        scopes=cfg.get("oauth_scopes"),
        user_agent=cfg.get("user_agent"),
        session=session,
    )


class LineWriter(MsgSpecWriter):
    """msgspec lines, RECORDs gathered into ~1 MiB writes. Every other message flushes them
    first, so a STATE always reaches the target after the records before it."""

    BUFFER = 1 << 20
    _pending: bytearray  # set with _target, at the first message
    _target: Any = None

    def write_message(self, message: Message) -> None:
        target = sys.stdout.buffer
        if target is not self._target:  # first message, or stdout was swapped
            if self._target is None:
                atexit.register(self._flush_at_exit)
            self.flush()
            self._target, self._pending = target, bytearray()
        if isinstance(message, RecordMessage):  # the SDK's encoding, straight into the buffer
            sdk_encoder.encode_into(message.to_dict(), self._pending, -1)
            self._pending += b"\n"
            if len(self._pending) >= self.BUFFER:
                self.flush()
            return
        self._pending += self.format_message(message)  # a copy: msgspec reuses its buffer
        self.flush()

    def _flush_at_exit(self) -> None:
        """The last records, unless their reader is gone (a closed pipe, or a test's swapped
        stdout): nothing can take them then, and a traceback at exit would only add noise."""
        with contextlib.suppress(ValueError, BrokenPipeError):
            self.flush()

    def flush(self) -> None:
        if self._target is None or not self._pending:
            return
        data, self._pending = self._pending, bytearray()
        self._target.write(data)
        self._target.flush()


class TapClose(TapHooks):
    """Singer tap for Close CRM, with API-key or OAuth (rotating refresh token) auth."""

    name = "tap-close"
    plugin_version = __version__
    message_writer_class = LineWriter
    dynamic_catalog = True

    config_jsonschema = SETTINGS.to_dict()

    @classmethod
    def env_config(cls) -> dict[str, Any]:
        """Settings from TAP_CLOSE_* variables (`--config ENV`), with numbers parsed here: the
        SDK keeps `number` settings as text and dies with a bare ValueError on `integer` ones."""
        schema = cls.config_jsonschema
        cls.append_builtin_config(schema)
        numeric = {name: _json_types(prop) for name, prop in schema["properties"].items()
                   if {"integer", "number"} & _json_types(prop)}
        as_text = {name: {"type": ["string"]} for name in numeric}
        lenient = {**schema, "properties": {**schema["properties"], **as_text}}
        config = environment_config(lenient, cls.env_prefix())
        for name in numeric.keys() & config.keys():
            text = str(config[name]).strip()
            try:
                config[name] = int(text) if "integer" in numeric[name] else float(text)
            except ValueError:
                variable = cls.env_prefix() + name.upper().replace("-", "_")
                raise ConfigError(f"{variable} ({name}) must be a number") from None
        return config

    def check_settings(self, config: dict[str, Any]) -> None:
        validate_settings(config)
        for key in unknown_settings(config):  # a typo, or a newer SDK's setting: not fatal
            self.logger.warning("Unknown setting %r: ignored (see `tap-close --about`)", key)
        problem = missing_map_config(config)
        if problem:
            raise ConfigError(problem)

    @cached_property
    def authenticator(self) -> Any:
        """One authenticator per tap process, shared by every stream."""
        return make_authenticator(self.config, self.http_session)

    @cached_property
    def http_session(self) -> requests.Session:
        """The process's one HTTP session (API and token calls, all threads)."""
        return new_session(self.workers)

    @cached_property
    def run_started(self) -> dt.datetime:
        """When this run began (UTC): the next run re-reads events from here."""
        return dt.datetime.now(dt.timezone.utc)

    @property
    def workers(self) -> int:
        return int(self.config.get("max_concurrency") or DEFAULT_CONCURRENCY)

    @cached_property
    def prefetcher(self) -> Prefetcher:
        """Fetches the next streams ahead while the current one is written."""
        return Prefetcher(self._sync_order, max(1, self.workers))

    def _sync_order(self) -> list:
        """The streams `sync_all` will sync, in its order."""
        return [s for s in self.streams.values()
                if (s.selected or s.has_selected_descendents) and not s.parent_stream_type]

    @cached_property
    def event_scan(self) -> EventScan:
        return EventScan(self.client, owners=lambda: [
            s for s in self.streams.values()
            if isinstance(s, EventReplay) and (s.selected or s.has_selected_descendents)])

    #: The shared event position as this run found it (streams replace it as they finish).
    previous_event_position: dict[str, Any] | None = None

    def load_state(self, state: dict[str, Any]) -> None:
        """The SDK keeps `bookmarks`; the event position shared by every stream too."""
        super().load_state(state)
        if isinstance(state.get(POSITION), dict):
            self.previous_event_position = dict(state[POSITION])
            self.state[POSITION] = state[POSITION]  # type: ignore[literal-required]

    @cached_property
    def client(self) -> CloseClient:
        # Bytes read ahead by windows and fan-outs not yet consumed (the one being written
        # is apart): enough to keep the writer busy, few enough for flat memory.
        parallel.read_ahead.limit = self.workers * READ_AHEAD_PER_WORKER
        client = CloseClient(
            self.config.get("api_url") or DEFAULT_API_URL,
            self.authenticator,
            timeout=float(self.config.get("request_timeout") or 300),
            user_agent=self.config.get("user_agent") or f"tap-close/{__version__}",
            workers=self.workers,
            session=self.http_session,
            budget_store=budget_store(self.config),
        )
        atexit.register(client.close)  # however the process ends: no socket left open
        return client

    @cached_property
    def memo(self) -> parallel.Memo:
        """Reads shared by streams, made once per run (created before threads start)."""
        return parallel.Memo()

    def me(self) -> dict:
        """`/me/`: the credential's user id and organizations."""
        return self.memo.get("me", lambda: self.client.get(
            "/me/", {"_fields": "id,organizations"}))

    def organization(self, org_id: str) -> dict:
        """`/organization/{id}/` (memberships included), read once for every stream."""
        return self.memo.get("organization:" + org_id, lambda: self.client.get(
            id_path("/organization/", org_id)))

    def listing(self, path: str, page_size: int = 100) -> list[dict]:
        """Every row of a small list that several streams read (sequences, comment threads,
        custom field lists), read once per run."""
        return self.memo.get("list:" + path, lambda: [
            row for page in self.client.pages(path, page_size=page_size) for row in page])

    def custom_field_definitions(self, object_type: str) -> list[dict]:
        """Custom fields (own and shared) that can be set on a Close object type."""
        return self.memo.get("fields:" + object_type,
                             lambda: self._read_custom_fields(object_type))

    def _read_custom_fields(self, object_type: str) -> list[dict]:
        try:
            if object_type in LISTED_FIELDS:  # the fields of every type of that object
                body = {"fields": self.listing(LISTED_FIELDS[object_type], 1000)
                        + self._shared_fields(SHARED_ASSOCIATION[object_type])}
            else:
                body = self.client.get(id_path("/custom_field_schema/", object_type))
        except AccessDeniedError as exc:
            self.logger.warning("Custom fields of %s unavailable: %s", object_type, exc)
            body = {}
        return [f for f in body.get("fields") or [] if isinstance(f, dict)]

    def _shared_fields(self, association: str) -> list[dict]:
        """Shared custom fields associated with some type of an object (`custom_object_type`,
        `custom_activity_type`): their values come on the instances as `custom.cf_...`."""
        try:
            fields = self.listing("/custom_field/shared/")
        except AccessDeniedError as exc:
            self.logger.warning("Shared custom fields unavailable: %s", exc)
            return []
        return [f for f in fields if isinstance(f, dict) and any(
            isinstance(a, dict) and a.get("object_type") == association
            for a in f.get("associations") or [])]

    def _custom_fields_page(self, object_type: str) -> list[list[dict]]:
        return [self.custom_field_definitions(object_type)]

    def discover_streams(self) -> list:
        _ = self.run_started, self.memo
        # The custom field lists are independent: fetch them concurrently.
        objects = ("lead", "contact", "opportunity", *LISTED_FIELDS)
        fetches = [partial(self._custom_fields_page, o) for o in objects]
        list(parallel.ordered(fetches, self.workers))
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    def sync_all(self) -> None:  # type: ignore[misc]  # final in the SDK; extended, not replaced
        self.warn_future_bookmarks()
        self.event_scan.start()
        try:
            super().sync_all()
        finally:
            self.event_scan.close()  # its file on disk
        stats = self.client.stats
        self.logger.info(
            "HTTP summary: %d requests, %d retries, %d rate-limited (429), %d token refreshes",
            stats["requests"], stats["retries"], stats["rate_limited"],
            getattr(self.authenticator, "refresh_count", 0),
        )

    def warn_future_bookmarks(self) -> None:
        """One WARNING naming the streams whose bookmark lies in the future (a skewed clock, a
        hand-edited STATE): they read nothing older, and their bookmark stays put."""
        soon = dt.datetime.now(dt.timezone.utc) + FUTURE_MARGIN
        late = sorted(
            name for name, entry in (self.state.get("bookmarks") or {}).items()
            if isinstance(entry, dict)
            and (when := parse_ts(entry.get("replication_key_value"))) is not None
            and when > soon)
        if late:
            self.logger.warning(
                "The STATE's bookmark lies in the future for %s: nothing older is read until "
                "then. If that is wrong (a skewed clock, an edited STATE), remove those "
                "bookmarks for a full sync of those streams.", ", ".join(late))

    def setup_stop_signals(self) -> None:
        """SIGHUP (a closed terminal or ssh session) and SIGQUIT stop the tap like SIGTERM."""
        handle_stop_signals(self._handle_termination)

    def on_stop_signal(self, signum: int, frame: Any) -> None:
        """SIGTERM/SIGINT/SIGHUP/SIGQUIT: stop now with one line and exit 128 + signal (the
        run is incomplete; the last STATE message written is where the next run resumes). A
        refresh token being rotated is saved first; none is rotated after."""
        if defer_signal(signum):
            self.logger.info("Stop signal received: finishing the token refresh first.")
            return
        self.logger.warning(
            "Stopped by %s: the sync is incomplete; the next run resumes from the last STATE "
            "message.", signal.Signals(signum).name)
        sys.exit(128 + signum)

    @classmethod
    def get_singer_command(cls) -> Any:
        """The SDK command, with known errors reported as one line and exit code 1."""
        parallel.limit_malloc()  # before any thread starts
        command = super().get_singer_command()
        command.main = _clean_errors(command.main, cls.logger)  # type: ignore[method-assign]
        for param in command.params:  # unreadable or invalid files: one line, not a traceback
            if param.name == "config" and param.callback:
                param.callback = _checked_config(param.callback)
            elif param.name in ("state", "catalog"):
                param.type = JsonFile()
        for handler in logging.getLogger().handlers:  # the SDK's console handler
            if not any(isinstance(f, OutputFilter) for f in handler.filters):
                handler.addFilter(OutputFilter())
        return command


class OutputFilter(logging.Filter):
    """Applied to every log line: credentials are redacted (Close, or a proxy, may echo a
    request's Authorization header in an error), and the SDK's "An unhandled error occurred
    while syncing" line becomes INFO, so that a failure is one ERROR line: the error itself.
    The SDK's "Skipping parse of env var settings" is dropped, and its "Stream is assumed to be
    unsorted" names the stream."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and str(record.msg).startswith(
                "An unhandled error occurred while syncing"):
            record.levelno, record.levelname = logging.INFO, "INFO"
        if record.msg == "Skipping parse of env var settings...":  # every run without ENV
            return False
        if str(record.msg).startswith("Stream is assumed to be unsorted"):
            stream = getattr(SYNCING, "stream", None)
            record.levelno, record.levelname = logging.INFO, "INFO"  # expected, not a problem
            record.msg = (f"Stream {stream!r} is read unsorted: its bookmark is set when the "
                          "stream completes (an interrupted run re-reads it from the previous one)")
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def read_json_object(option: str, path: str) -> str:
    """The text of a JSON-object file given to `option`; ConfigError naming the option and
    the file (never its content) when it cannot be read or is not a JSON object."""
    try:
        stdin = path == "-" and option != "--config"  # click.File's "-"; the SDK's config: no
        text = sys.stdin.read() if stdin else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"{option} {path}: cannot be read ({reason})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"{option} {path}: not valid JSON (line {exc.lineno}, column {exc.colno})"
        raise ConfigError(msg) from None
    if not isinstance(value, dict):
        raise ConfigError(f"{option} {path}: must hold a JSON object")
    return text


class JsonFile(click.ParamType):
    """`--state` / `--catalog`: a readable file holding a JSON object, passed on as text."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        if not isinstance(value, str):
            return value  # already a file object
        return io.StringIO(read_json_object(f"--{param.name if param else 'file'}", value))


def _checked_config(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Check every `--config` file before the SDK reads it (ENV is not a file)."""
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        for path in value or ():
            if path != "ENV":
                read_json_object("--config", path)
        return callback(ctx, param, value)

    return check


CLEAN_ERRORS = (ConfigError, AuthError, CloseAPIError)


def _clean_errors(main: Callable[..., Any], logger: Any) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except CLEAN_ERRORS as exc:
            logger.error("%s", exc)
            sys.exit(1)
        except ConfigValidationError as exc:
            logger.error("Config validation failed: %s", "; ".join(exc.errors))
            sys.exit(1)

    return wrapper


if __name__ == "__main__":
    TapClose.cli()
