"""singer-sdk's standard tap tests, run in-process against the emulator."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_close.tap import TapClose
from tests.emulator import CloseEmulator

_EMULATOR = CloseEmulator(seed=11, n_leads=25).start()
atexit.register(_EMULATOR.stop)

TestTapClose = get_tap_test_class(
    TapClose,
    config={"api_key": _EMULATOR.api_key, "api_url": _EMULATOR.api_url},
    parse_env_config=False,
    suite_config=SuiteConfig(max_records_limit=50),
)
