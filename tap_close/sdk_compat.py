"""Every use of a private singer-sdk member (a name starting with `_`), in one place.

The SDK may change its private members in any release. The tap calls and overrides them only
here: the overrides hand over to plain-named hooks (`process_record`, `write_record`,
`advance_bookmark`, ...) that the streams and the tap override instead, and whose default is
the SDK's behaviour. `PRIVATE` lists each member with the parameters it is used with;
tests/test_sdk_compat.py checks every one against the installed SDK (and that the SDK still
calls it where we rely on it), so an upgrade that changes one fails there, by name.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream, Tap
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.helpers._catalog import pop_deselected_record_properties
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.helpers._util import utc_now

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: "Owner.member" -> the parameters used (after self/cls); None for attributes.
PRIVATE: dict[str, tuple[str, ...] | None] = {
    "Stream._process_record": ("record", "child_context", "partition_context"),
    "Stream._write_record_message": ("record",),
    "Stream._increment_stream_state": ("latest_record", "context"),
    "Stream._sync_children": ("child_context",),
    "Stream._write_starting_replication_value": ("context",),
    "Stream._write_state_message": (),
    "Stream._write_activate_version_message": ("full_table_version",),
    "Stream._stream_version": None,
    "Stream._tap": None,
    "Stream._tap_input_catalog": None,
    "Tap._env_var_config": None,
    "Tap._env_var_prefix": None,
    "Tap._validate_config": ("raise_errors",),
    "Tap._config": None,
    "Tap._handle_termination": ("signum", "frame"),
    "Tap._setup_signal_handlers": (),
    "configuration._dict_config.parse_environment_config": ("config_schema", "prefix"),
    "helpers._catalog.pop_deselected_record_properties": ("record", "schema", "mask"),
    "helpers._classproperty.classproperty": None,
    "helpers._util.utc_now": (),
}

__all__ = ["PRIVATE", "StreamHooks", "TapHooks", "classproperty", "environment_config",
           "input_catalog", "pop_deselected_record_properties", "set_stream_version",
           "stream_version", "utc_now", "write_activate_version", "write_state"]


def environment_config(schema: dict, prefix: str) -> dict[str, Any]:
    """Settings from `<prefix><NAME>` environment variables, as the SDK parses them."""
    return parse_environment_config(schema, prefix)


def stream_version(stream: Stream) -> Any:
    """The version the SDK puts in a stream's RECORD messages (set when its sync starts)."""
    return stream._stream_version


def set_stream_version(stream: Stream, version: int) -> None:
    """Give the stream's RECORD messages this table version from now on."""
    stream._stream_version = version


def write_activate_version(stream: Stream, version: int) -> None:
    """Write ACTIVATE_VERSION for the stream (each stream map's alias), as the SDK does."""
    stream._write_activate_version_message(version)


def input_catalog(stream: Stream) -> Any:
    """The catalog the tap was given (None: discovery's defaults apply)."""
    return stream._tap_input_catalog


def write_state(stream: Stream) -> None:
    """Write a STATE message now (if the state changed since the last one)."""
    stream._write_state_message()



#: The stream whose bookmark this thread moves (for log lines of the SDK that do not say).
SYNCING = threading.local()

class StreamHooks(Stream):
    """The SDK's private Stream hooks the tap overrides, handed to plain-named methods."""

    def _process_record(self, record: dict, child_context: Context | None = None,
                        partition_context: Context | None = None) -> None:
        self.process_record(record, child_context, partition_context)

    def process_record(self, record: dict, child_context: Context | None,
                       partition_context: Context | None) -> None:
        """Once per record, before it is written (children, partition keys)."""
        super()._process_record(record, child_context=child_context,
                                partition_context=partition_context)

    def _write_record_message(self, record: dict) -> None:
        self.write_record(record)

    def write_record(self, record: dict) -> None:
        """Write a record's RECORD message(s), one per stream map."""
        super()._write_record_message(record)

    def _increment_stream_state(self, latest_record: dict, *,
                                context: Context | None = None) -> None:
        self.advance_bookmark(latest_record, context=context)

    def advance_bookmark(self, latest_record: dict, *, context: Context | None = None) -> None:
        """Move the bookmark over a record just written."""
        SYNCING.stream = self.name  # names the stream in the SDK's "assumed to be unsorted"
        super()._increment_stream_state(latest_record, context=context)

    def _sync_children(self, child_context: Context | None) -> None:
        self.sync_children(child_context)

    def sync_children(self, child_context: Context | None) -> None:
        """Sync the child streams for one record (the SDK: one child sync per record)."""
        super()._sync_children(child_context)

    def _write_state_message(self) -> None:
        self.write_state_message()

    def write_state_message(self) -> None:
        """Write a STATE message if the state changed since the last one."""
        super()._write_state_message()

    def _write_starting_replication_value(self, context: Context | None) -> None:
        self.write_starting_value(context)

    def write_starting_value(self, context: Context | None) -> None:
        """Record (and log) where an incremental sync starts."""
        super()._write_starting_replication_value(context)


class TapHooks(Tap):
    """The SDK's private Tap hooks the tap overrides, handed to plain-named methods."""

    @classproperty
    def _env_var_config(cls) -> dict[str, Any]:
        return cls.env_config()

    @classmethod
    def env_config(cls) -> dict[str, Any]:
        """Settings from TAP_CLOSE_* variables (`--config ENV`)."""
        schema = cls.config_jsonschema
        cls.append_builtin_config(schema)
        return environment_config(schema, cls.env_prefix())

    @classmethod
    def env_prefix(cls) -> str:
        return str(cls._env_var_prefix)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        self.check_settings(dict(self._config))
        return super()._validate_config(raise_errors=raise_errors)

    def check_settings(self, config: dict[str, Any]) -> None:
        """Check the settings before the SDK validates them against the schema."""

    def _setup_signal_handlers(self) -> None:
        super()._setup_signal_handlers()
        self.setup_stop_signals()

    def setup_stop_signals(self) -> None:
        """Handle more stop signals than the SDK's SIGTERM and SIGINT."""

    def _handle_termination(self, signum: int, frame: Any) -> None:
        self.on_stop_signal(signum, frame)

    def on_stop_signal(self, signum: int, frame: Any) -> None:
        """SIGTERM/SIGINT."""
        super()._handle_termination(signum, frame)
