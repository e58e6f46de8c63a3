"""Two OAuth chains (two configs with different refresh tokens: two Close organizations
through one app, or staging and production) on one explicit token store, file or S3: runs
A, B, A, B keep both chains alive (issue 22, item 1)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import oauth_config
from tests.emulator import CloseEmulator
from tests.store_support import BUCKET, FreshRun, s3_record, s3_server
from tests.test_reliability_support import assert_clean, emulator_secrets, track_tokens

OTHERS = "other_chains"  # the stored layout: the chain refreshed last on top, the rest here


def stored_refresh_tokens(document: dict[str, Any]) -> set[str]:
    chains = [document, *document.get(OTHERS, {}).values()]
    return {chain["refresh_token"] for chain in chains}


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_two_chains_on_one_store_keep_each_other_alive(kind: str, tmp_path: Path) -> None:
    with CloseEmulator(seed=91, n_leads=2, access_token_ttl=0.3) as emu, s3_server() as s3:
        track_tokens(emu)
        if kind == "file":
            path = tmp_path / "shared" / "close.json"
            url = path.as_uri()

            def read() -> dict[str, Any]:
                return json.loads(path.read_text())
        else:
            url = f"s3://{BUCKET}/shared.json?endpoint_url={s3}"

            def read() -> dict[str, Any]:
                return s3_record(s3, "shared.json")
        configs = {}
        for name in "AB":
            settings = oauth_config(emu, "", token_store=url)
            del settings["token_store_path"]
            configs[name] = FreshRun(tmp_path / name, settings)
        runs = []
        for i, name in enumerate("ABAB"):
            time.sleep(0.35)  # the stored access tokens have expired: every run rotates
            run = configs[name].run(f"run{i}", "--discover")
            runs.append(run)
            assert run.returncode == 0, run.stderr[-3000:]
        assert emu.stats["invalid_grants"] == 0
        assert emu.stats["token_refreshes"] == 4
        assert emu.current_refresh_tokens == stored_refresh_tokens(read())
        assert len(emu.current_refresh_tokens) == 2, "one live token per chain"
        assert "another OAuth chain" not in "".join(r.stderr for r in runs)
        tokens = [c.settings["refresh_token"] for c in configs.values()]
        assert_clean(runs, emulator_secrets(emu, *tokens))
