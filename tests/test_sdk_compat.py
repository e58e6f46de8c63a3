"""Each private singer-sdk member the tap uses (tap_close/sdk_compat.py) still exists in the
installed SDK, with the parameters we use, and the SDK still uses it where we rely on it. A
failure here names the member to re-check after an SDK upgrade."""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
from typing import Any

import pytest
from singer_sdk import Stream, Tap
from singer_sdk.singerlib import Catalog, CatalogEntry, MetadataMapping, Schema

from tap_close import sdk_compat
from tap_close.sdk_compat import PRIVATE, StreamHooks, TapHooks
from tap_close.streams import STREAM_TYPES
from tap_close.tap import TapClose

OWNERS: dict[str, type] = {"Stream": Stream, "Tap": Tap}
#: Where the SDK uses a member we override or read (text that must appear in that module).
USED_BY: dict[str, str] = {
    "Stream._process_record": "self._process_record(",
    "Stream._write_record_message": "self._write_record_message(",
    "Stream._increment_stream_state": "self._increment_stream_state(",
    "Stream._sync_children": "self._sync_children(",
    "Stream._write_starting_replication_value": "self._write_starting_replication_value(",
    "Stream._write_state_message": "self._write_state_message(",
    "Stream._stream_version": "self._stream_version",
    "Stream._tap": "self._tap = tap",
    "Stream._tap_input_catalog": "self._tap_input_catalog",
    "Tap._env_var_config": "self._env_var_config",
    "Tap._env_var_prefix": "def _env_var_prefix(",
    "Tap._validate_config": "self._validate_config(",
    "Tap._config": "self._config",
    "Tap._handle_termination": "self._handle_termination",
}


def resolve(name: str) -> tuple[Any, str]:
    """The member (None: an instance attribute) and the source of the SDK classes it may be
    used in (the owner and its SDK base classes; "" for functions)."""
    owner_name, _, member = name.rpartition(".")
    if owner_name in OWNERS:
        sdk_classes = [k for k in OWNERS[owner_name].__mro__
                       if k.__module__.startswith("singer_sdk")]
        source = "".join(inspect.getsource(inspect.getmodule(k)) for k in sdk_classes)
        found = next((vars(k)[member] for k in sdk_classes if member in vars(k)), None)
        return found, source
    module = importlib.import_module(f"singer_sdk.{owner_name}")
    return getattr(module, member, None), ""


def parameters(function: Any) -> tuple[str, ...]:
    function = getattr(function, "__func__", function)
    names = list(inspect.signature(function).parameters)
    return tuple(n for n in names if n not in ("self", "cls"))


@pytest.mark.parametrize("name", sorted(PRIVATE))
def test_private_sdk_member(name: str) -> None:
    member, source = resolve(name)
    expected = PRIVATE[name]
    if expected is not None:  # a method or function: the parameters we pass
        assert callable(member), f"singer-sdk no longer has {name}"
        used = parameters(member)[: len(expected)]
        assert used == expected, f"singer-sdk changed {name}{used}; sdk_compat uses {expected}"
    if name in USED_BY:  # the SDK still calls, sets or reads it
        assert USED_BY[name] in source, (
            f"singer-sdk no longer uses {name} as tap_close.sdk_compat expects")


def test_every_private_use_is_listed() -> None:
    """The hooks and helpers of sdk_compat cover exactly the listed members."""
    def private(klass: type) -> set[str]:
        return {n for n in vars(klass) if n.startswith("_") and not n.startswith("__")
                and n != "_abc_impl"}

    hooks = {f"Stream.{n}" for n in private(StreamHooks)} | {f"Tap.{n}" for n in private(TapHooks)}
    assert hooks <= set(PRIVATE)
    source = inspect.getsource(sdk_compat)
    for name in PRIVATE:
        assert name.rpartition(".")[2] in source, name


def test_private_helpers_behave() -> None:
    """The private functions still do what the tap relies on."""
    now = sdk_compat.utc_now()
    assert now.tzinfo is not None and abs(now - dt.datetime.now(dt.timezone.utc)).seconds < 5

    class Holder:
        @sdk_compat.classproperty
        def value(cls) -> str:
            return cls.__name__

    assert Holder.value == "Holder"
    schema = {"properties": {"a": {"type": ["string"]}, "b": {"type": ["string"]}}}
    entry = CatalogEntry(tap_stream_id="s", stream="s", schema=Schema.from_dict(schema),
                         metadata=MetadataMapping.get_standard_metadata(schema=schema))
    entry.metadata[()].selected = True
    entry.metadata[("properties", "b")].selected = False
    mask = Catalog({"s": entry})["s"].metadata.resolve_selection()
    record = {"a": "1", "b": "2"}
    sdk_compat.pop_deselected_record_properties(record, schema, mask)
    assert record == {"a": "1"}


def test_environment_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TapClose.env_prefix() == "TAP_CLOSE_"
    monkeypatch.setenv("TAP_CLOSE_API_KEY", "k")
    monkeypatch.setenv("TAP_CLOSE_MAX_CONCURRENCY", "3")
    config = TapClose.env_config()
    assert config["api_key"] == "k" and config["max_concurrency"] == 3


def test_streams_use_the_hooks() -> None:
    """No stream overrides a private SDK hook directly (they override the plain names)."""
    private = {name.rpartition(".")[2] for name in PRIVATE if name.startswith("Stream.")}
    for stream_type in STREAM_TYPES:
        for klass in stream_type.__mro__:
            if klass in (StreamHooks, Stream) or not klass.__module__.startswith("tap_close"):
                continue
            assert not private & set(vars(klass)), f"{klass.__name__} overrides a private hook"
