"""`tap-close-doctor` with OAuth (file and PostgreSQL token stores: the tap's store, lock and
rotation), and the tap's HTTP rules (no redirect followed, replies capped) (issue 22, items 4
and 11)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import api_key_config, oauth_config
from tests.emulator import CloseEmulator
from tests.harness import TapRun
from tests.scripted import scripted
from tests.store_support import postgres_store
from tests.test_doctor import doctor
from tests.test_reliability_support import assert_clean, emulator_secrets, track_tokens


def as_run(proc: Any) -> TapRun:
    return TapRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("kind", ["file", "postgresql"])
def test_doctor_with_oauth_spends_and_saves_through_the_store(kind: str, tmp_path: Path) -> None:
    with CloseEmulator(seed=3, n_leads=3, access_token_ttl=0.5) as emu, postgres_store() as pg:
        track_tokens(emu)
        if kind == "file":
            config = oauth_config(emu, str(tmp_path / "store" / "close.json"))
        else:
            config = oauth_config(emu, "", token_store=pg[0])
            del config["token_store_path"]
        runs = []
        for _ in range(2):  # the second run spends the token the first one saved
            time.sleep(0.6)
            proc = doctor(config, tmp_path, "--json")
            assert proc.returncode == 0, proc.stderr
            report = json.loads(proc.stdout)
            assert report["auth"]["works"] and report["user"]["id"] == emu.data.user_ids[0]
            assert report["organization"]["id"] == emu.organization_id
            runs.append(as_run(proc))
        assert emu.stats["token_refreshes"] >= 2 and emu.stats["invalid_grants"] == 0
        if kind == "file":
            stored = json.loads((tmp_path / "store" / "close.json").read_text())
        else:
            ((stored,),) = pg[1]("SELECT record FROM tap_close_tokens")
        assert emu.current_refresh_tokens == {stored["refresh_token"]}
        assert_clean(runs, emulator_secrets(emu, config["refresh_token"]))


def test_doctor_does_not_follow_a_redirect(tmp_path: Path) -> None:
    with CloseEmulator(seed=3, n_leads=3) as emu:
        def redirect(method: str, path: str, headers: dict, body: bytes) -> Any:
            return 302, {"Location": emu.url + path}, b""

        with scripted(redirect) as server:
            config = api_key_config(emu, api_url=server.url + "/api/v1")
            proc = doctor(config, tmp_path, "--json")
        assert proc.returncode == 1 and "redirect" in proc.stderr, proc.stderr
        assert emu.organization_id not in proc.stdout + proc.stderr
        assert len(emu.request_log) == 0, "nothing reached the other port"
        assert len(server.seen) == 1
        assert_clean([as_run(proc)], emulator_secrets(emu))


def test_doctor_refuses_an_oversized_reply(tmp_path: Path) -> None:
    def huge(method: str, path: str, headers: dict, body: bytes) -> Any:
        return 200, {"Content-Length": str(10 << 30), "Content-Type": "application/json"}, b"{"

    with scripted(huge) as server:
        config = {"api_key": "api_doctor_key_123456", "api_url": server.url + "/api/v1",
                  "request_timeout": 30}
        started = time.monotonic()
        proc = doctor(config, tmp_path, "--json")
        assert time.monotonic() - started < 20, "the body was not waited for"
    assert "Traceback" not in proc.stderr and "api_doctor_key_123456" not in proc.stdout
    if proc.returncode == 0:
        assert json.loads(proc.stdout)["auth"]["works"] is False
