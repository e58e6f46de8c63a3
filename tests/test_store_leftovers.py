"""Failed OAuth runs leave no `.tmp-*` file beside the token store (issue 22, item 14): once
a refresh fails for good, no other thread of the run starts one (each would prepare a temp
file, and the process may exit while its request is out)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import oauth_config
from tests.emulator import CloseEmulator
from tests.test_reliability_oauth import assert_one_clear_error
from tests.test_reliability_support import assert_clean, emulator_secrets, run_cli, track_tokens


def test_failed_runs_leave_no_temp_files(tmp_path: Path) -> None:
    store = tmp_path / "tokens" / "close.json"
    with CloseEmulator(seed=97, n_leads=10, access_token_ttl=0.3, slow_seconds=0.5) as emu:
        track_tokens(emu)
        config = oauth_config(emu, str(store))
        runs = [run_cli(config, tmp_path, name="ok").assert_ok()]
        for token in list(emu.current_refresh_tokens):
            emu.revoke_refresh_token(token)  # e.g. the app was disconnected in Close
        for i in range(4):
            time.sleep(0.35)  # the stored access token has expired
            emu.inject(["slow", "slow"], path_prefix="/oauth2/token/")  # requests overlap exit
            run = run_cli(config, tmp_path, name=f"failed{i}")
            assert_one_clear_error(run, "invalid_grant")
            runs.append(run)
            leftovers = [p.name for p in store.parent.iterdir() if p.name.startswith(".tmp-")]
            assert not leftovers, f"run {i}: {leftovers}"
        assert emu.stats["invalid_grants"] == 4, "one token request per failed run"
        assert_clean(runs, emulator_secrets(emu, config["refresh_token"]), store)
