"""Bad configuration: one clear error line naming the setting, exit 1, no traceback, no secret.

Complements tests/test_config.py (which covers the credential combinations, start_date, URLs
and request_timeout) with the token store, empty strings, wrong types and header-breaking
values. Every case runs in sync, --discover and --test modes; none reaches the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.emulator import CloseEmulator
from tests.harness import TapRun
from tests.test_reliability_support import assert_clean, run_cli

SECRET = "sk_live_RELIABILITY_NEVER_PRINTED_7"
OAUTH = {"client_id": "oa2client_x", "client_secret": SECRET, "refresh_token": SECRET + "r",
         "api_url": "http://127.0.0.1:9/api/v1", "oauth_token_url": "http://127.0.0.1:9/o/"}
KEY = {"api_key": SECRET, "api_url": "http://127.0.0.1:9/api/v1"}


def _store(tmp: Path, kind: str) -> str:
    path = tmp / "store" / "close.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "corrupted":
        path.write_text('{"refresh_token": "abc", "access_')  # cut short
    elif kind == "wrong shape":
        path.write_text(json.dumps(["not", "a", "store"]))
    elif kind == "no token":
        path.write_text(json.dumps({"client_id": "oa2client_x", "access_token": SECRET}))
    elif kind == "a directory":
        path.mkdir()
    elif kind == "under a file":  # its directory cannot be created (works as root too)
        blocker = tmp / "store" / "plainfile"
        blocker.write_text("x")
        path = blocker / "tokens" / "close.json"
    return str(path)


# case -> (config, or a function of tmp_path giving one; text the error line must contain)
CASES: dict[str, tuple[Any, str]] = {
    "corrupted token store": (lambda t: {**OAUTH, "token_store_path": _store(t, "corrupted")},
                              "token_store_path"),
    "token store not an object": (lambda t: {**OAUTH, "token_store_path":
                                             _store(t, "wrong shape")}, "token_store_path"),
    "token store without a token": (lambda t: {**OAUTH, "token_store_path":
                                               _store(t, "no token")}, "token_store_path"),
    "unreadable token store": (lambda t: {**OAUTH, "token_store_path":
                                          _store(t, "a directory")}, "token_store_path"),
    "token store dir not writable": (lambda t: {**OAUTH, "token_store_path":
                                                _store(t, "under a file")}, "token_store_path"),
    "empty client_secret": ({**OAUTH, "client_secret": ""}, "missing client_secret"),
    "empty refresh_token": ({**OAUTH, "refresh_token": " "}, "missing refresh_token"),
    "empty api_url": ({**KEY, "api_url": ""}, "api_url"),
    "api_url without host": ({**KEY, "api_url": "https://"}, "api_url"),
    "empty token_store_path": ({**OAUTH, "token_store_path": ""}, "token_store_path"),
    "empty start_date": ({**KEY, "start_date": ""}, "start_date"),
    "start_date wrong type": ({**KEY, "start_date": 20240101}, "start_date"),
    "start_date as date with junk": ({**KEY, "start_date": "2024-13-45"}, "start_date"),
    "client_id wrong type": ({**OAUTH, "client_id": ["oa2client_x"]}, "client_id"),
    "request_timeout as text": ({**KEY, "request_timeout": "30"}, "request_timeout"),
    "request_timeout boolean": ({**KEY, "request_timeout": True}, "request_timeout"),
    "track_deletes as text": ({**KEY, "track_deletes": "yes"}, "track_deletes"),
    "max_concurrency zero": ({**KEY, "max_concurrency": 0}, "max_concurrency"),
    "max_concurrency negative": ({**KEY, "max_concurrency": -2}, "max_concurrency"),
    "user_agent with a line break": ({**KEY, "user_agent": "tap\r\nX-Injected: 1"},
                                     "user_agent"),
    "api_key with a line break": ({**KEY, "api_key": SECRET + "\n"}, "api_key"),
    "client_secret with spaces": ({**OAUTH, "client_secret": f" {SECRET} "}, "client_secret"),
}


MODES = [(), ("--discover",), ("--test",)]


def assert_one_error_line(run: TapRun, expected: str) -> None:
    assert run.returncode == 1, run.stderr[-2000:]
    errors = [ln for ln in run.stderr.splitlines() if "| ERROR" in ln]
    assert len(errors) == 1, run.stderr[-3000:]
    assert expected in errors[0], errors[0]
    assert not run.stdout.strip(), "nothing on stdout"


@pytest.mark.parametrize("case", CASES)
def test_bad_setting_is_one_clear_line(case: str, tmp_path: Path) -> None:
    config, expected = CASES[case]
    if callable(config):
        config = config(tmp_path)
    mode = MODES[list(CASES).index(case) % len(MODES)]  # each mode in turn, one run per case
    run = run_cli(config, tmp_path, *mode)
    assert_one_error_line(run, expected)
    assert_clean([run], [SECRET, SECRET + "r", "X-Injected"])


def test_settings_from_the_environment(emulator: CloseEmulator, tmp_path: Path) -> None:
    """`--config ENV`: numbers arrive as text and are parsed; a bad one names the variable."""
    env = {"TAP_CLOSE_API_KEY": emulator.api_key, "TAP_CLOSE_API_URL": emulator.api_url,
           "TAP_CLOSE_REQUEST_TIMEOUT": "12.5", "TAP_CLOSE_MAX_CONCURRENCY": "2",
           "TAP_CLOSE_TRACK_DELETES": "false"}
    good = run_cli(None, tmp_path, "--discover", env=env, name="good")
    assert good.returncode == 0, good.stderr[-2000:]
    bad = run_cli(None, tmp_path, "--discover", name="bad",
                  env={**env, "TAP_CLOSE_MAX_CONCURRENCY": "eight"})
    assert_one_error_line(bad, "TAP_CLOSE_MAX_CONCURRENCY")
    assert_clean([good, bad], [emulator.api_key])
