"""`tap-close-auth` (issue 22, item 7): the token URL must be https (or loopback http) before
the secret and the code go to it; an --output that cannot be written fails before the code
is spent; the config is written as a new 0600 file renamed into place."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.emulator import CloseEmulator
from tests.test_token_safety import AUTH_CLI, REDIRECT, auth_cli, finish


@pytest.mark.parametrize("how", ["option", "variable"])
@pytest.mark.parametrize("url", ["http://10.9.9.9/oauth2/token/",
                                 "http://10.9.9.9\\@127.0.0.1:9/oauth2/token/",
                                 "ftp://127.0.0.1/oauth2/token/"])
def test_token_url_is_checked_before_the_secret_is_sent(url: str, how: str,
                                                        tmp_path: Path) -> None:
    with CloseEmulator(seed=92, n_leads=1) as emu:
        code = emu.issue_auth_code(REDIRECT)
        args = ["--token-store-path", str(tmp_path / "s.json"), "--code", code]
        if how == "option":
            proc = auth_cli(emu, *args, "--token-url", url)
        else:  # the variable is the default of --token-url: give no option
            env = {**os.environ, "TAP_CLOSE_CLIENT_SECRET": emu.client_secret,
                   "TAP_CLOSE_OAUTH_TOKEN_URL": url}
            proc = subprocess.Popen(
                [AUTH_CLI, "--client-id", emu.client_id, "--redirect-uri", REDIRECT, *args],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        rc, out, err = finish(proc)
        assert rc == 1 and "--token-url" in err and "Traceback" not in err, err
        assert emu.client_secret not in out + err and code not in out + err
        assert emu.oauth.code_grants == 0 and not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("where", ["missing-folder", "a-directory"])
def test_unwritable_output_fails_before_the_code_is_spent(where: str, tmp_path: Path) -> None:
    output = tmp_path / "nowhere" / "config.json" if where == "missing-folder" else tmp_path
    store = tmp_path / "s.json"
    with CloseEmulator(seed=93, n_leads=1) as emu:
        code = emu.issue_auth_code(REDIRECT)
        rc, out, err = finish(auth_cli(emu, "--token-store-path", str(store), "--code", code,
                                       "--output", str(output)))
        assert rc == 1 and "--output" in err and "Traceback" not in err, err
        assert emu.oauth.code_grants == 0, "the code is not spent"
        assert not store.exists(), "the store is not seeded"
        assert emu.client_secret not in out + err


def test_output_replaces_the_file_instead_of_writing_into_it(tmp_path: Path) -> None:
    output, target = tmp_path / "config.json", tmp_path / "elsewhere.json"
    output.write_text('{"old": true}')
    output.chmod(0o644)
    reader = output.open()  # opened while the file was 0644
    target.write_text("untouched")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with CloseEmulator(seed=94, n_leads=1) as emu:
        for path in (output, link):
            code = emu.issue_auth_code(REDIRECT)
            rc, _, err = finish(auth_cli(emu, "--token-store-path", str(tmp_path / "s.json"),
                                         "--code", code, "--output", str(path)))
            assert rc == 0, err
            assert stat.S_IMODE(path.lstat().st_mode) == 0o600 and not path.is_symlink()
            assert json.loads(path.read_text())["client_secret"] == emu.client_secret
        assert emu.client_secret not in reader.read(), "the old descriptor sees no secret"
        reader.close()
        assert target.read_text() == "untouched", "the symlink was not followed"
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
        assert not leftovers, leftovers
