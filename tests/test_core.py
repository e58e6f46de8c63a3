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
