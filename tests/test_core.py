"""singer-sdk's standard tap tests, run in-process against the emulator."""

from __future__ import annotations

import atexit
import datetime as dt

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_close.tap import TapClose
from tests.emulator import CloseEmulator

_EMULATOR = CloseEmulator(seed=11, n_leads=25).start()
atexit.register(_EMULATOR.stop)
_EMULATOR.data.clock.offset = -dt.timedelta(hours=1)  # event history older than 5 minutes
for _lead in sorted(_EMULATOR.truth("leads"))[:3]:
    _EMULATOR.update_lead(_lead)
_EMULATOR.data.clock.offset = dt.timedelta(0)

TestTapClose = get_tap_test_class(
    TapClose,
    config={"api_key": _EMULATOR.api_key, "api_url": _EMULATOR.api_url},
    parse_env_config=False,
    suite_config=SuiteConfig(max_records_limit=50),
)


def _fresh_attribute_tests() -> None:
    """The SDK runs every parameter of an attribute test on one template instance whose value
    list is a cached_property: only the first property would really be checked. Give each run
    its own instance, and check a value type only where the schema allows that one type."""
    for name in [n for n in TestTapClose.params if n.startswith("test_tap_stream_attribute_")]:
        template = type(getattr(TestTapClose, name).__self__)
        TestTapClose.params[name] = [p for p in TestTapClose.params[name] if _one_type(p)]

        def run(self, config, resource, runner, stream, attribute_name,  # noqa: PLR0917
                _t=template):  # type: ignore[no-untyped-def]
            _t().run(config, resource, runner, stream, attribute_name)

        setattr(TestTapClose, name, run)


def _one_type(param: object) -> bool:
    stream, name = param.values  # type: ignore[attr-defined]
    types = stream.schema["properties"][name].get("type") or []
    types = [types] if isinstance(types, str) else types
    return len([t for t in types if t != "null"]) <= 1


_fresh_attribute_tests()
