"""Credential safety of the token store and `tap-close-auth` (real CLI, emulator, files).

A store that fails after Close rotated the token: the token reaches a local 0600 file that the
error names. A store that cannot be written before a refresh: nothing is spent. Two
organizations sharing one OAuth app keep separate chains in the default store.
`tap-close-auth` checks `state`, takes the store's lock and writes its config 0600.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tap_close.stores.base import client_slug
from tests.conftest import oauth_config
from tests.emulator import CloseEmulator
from tests.harness import parse_run
from tests.store_support import AWS_ENV, BUCKET, FreshRun, postgres_store, s3_record, s3_server
from tests.test_reliability_oauth import assert_one_clear_error, tap_in_a_slow_refresh
from tests.test_reliability_support import (
    assert_clean,
    emulator_secrets,
    run_cli,
    track_tokens,
)

AUTH_CLI = str(Path(sys.executable).with_name("tap-close-auth"))
REDIRECT = "https://example.com/callback/close"


def test_store_lost_after_the_refresh_rescues_the_token(tmp_path: Path) -> None:
    store = tmp_path / "volume" / "close.json"
    with CloseEmulator(seed=81, n_leads=3, slow_seconds=1.0) as emu:
        track_tokens(emu)
        config = oauth_config(emu, str(store))
        proc = tap_in_a_slow_refresh(emu, config, tmp_path, "lost")
        shutil.rmtree(store.parent)  # the volume goes away while Close rotates the token
        store.parent.write_text("not a directory any more")
        run = proc.finish()
        error = assert_one_clear_error(run, "token_store_path", "saved to ")
        rescued = Path(error.split("saved to ")[1].split(" (mode 0600)")[0])
        assert rescued.parent == tmp_path / "xdg" / "tap-close"
        assert stat.S_IMODE(rescued.stat().st_mode) == 0o600
        record = json.loads(rescued.read_text())
        assert emu.stats["token_refreshes"] == 1 and emu.stats["invalid_grants"] == 0
        assert emu.current_refresh_tokens == {record["refresh_token"]}, "the live token is kept"
        assert_clean([run], emulator_secrets(emu, config["refresh_token"]))

        store.parent.unlink()  # the fix the error asks for: set the rescued token
        after = run_cli({**config, "refresh_token": record["refresh_token"]}, tmp_path,
                        name="after").assert_ok()
        assert after.ids("users") == emu.truth("users") and emu.stats["invalid_grants"] == 0
        assert_clean([after], emulator_secrets(emu, config["refresh_token"]))


def test_store_not_writable_before_the_refresh_spends_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "plainfile"
    blocker.write_text("x")
    with CloseEmulator(seed=82, n_leads=3) as emu:
        config = oauth_config(emu, f"file://{blocker}/tokens/close.json")
        config["token_store"] = config.pop("token_store_path")
        run = run_cli(config, tmp_path)
        assert_one_clear_error(run, "token_store", "cannot create directory")
        assert emu.stats["token_refreshes"] == 0
        assert config["refresh_token"] in emu.current_refresh_tokens


def test_unparsable_expires_in_still_saves_the_rotated_token(tmp_path: Path) -> None:
    store = tmp_path / "close.json"
    with CloseEmulator(seed=83, n_leads=3) as emu:
        track_tokens(emu)
        emu.oauth.expires_in_text = "1h"
        config = {**oauth_config(emu, ""), "token_store": f"file://{store}"}
        del config["token_store_path"]
        run = run_cli(config, tmp_path).assert_ok()
        assert "no usable expires_in" in run.stderr and "Traceback" not in run.stderr
        assert emu.current_refresh_tokens == {json.loads(store.read_text())["refresh_token"]}
        assert_clean([run], emulator_secrets(emu, config["refresh_token"]), store)


def test_two_organizations_sharing_an_oauth_app_keep_their_chains(tmp_path: Path) -> None:
    """Default store: one file per client id and chain, so neither overwrites the other."""
    with CloseEmulator(seed=84, n_leads=3, access_token_ttl=0.3) as emu:
        track_tokens(emu)
        orgs = {name: oauth_config(emu, "") for name in ("acme", "globex")}
        for config in orgs.values():
            del config["token_store_path"]
        runs = [run_cli(orgs[name], tmp_path, name=f"{name}{i}").assert_ok()
                for i in range(2) for name in orgs]
        assert emu.stats["invalid_grants"] == 0 and emu.stats["token_refreshes"] >= 4
        files = sorted((tmp_path / "xdg" / "tap-close").glob("oauth-*.json"))
        assert len(files) == 2
        live = {json.loads(f.read_text())["refresh_token"] for f in files}
        assert emu.current_refresh_tokens == live
        assert_clean(runs, emulator_secrets(emu, *(c["refresh_token"] for c in orgs.values())))


def test_default_store_of_an_earlier_version_is_taken_over(tmp_path: Path) -> None:
    """The default file used to be one per client id: its chain carries on, then it goes."""
    with CloseEmulator(seed=85, n_leads=3) as emu:
        config = oauth_config(emu, "")
        del config["token_store_path"]
        first = run_cli(config, tmp_path, name="first").assert_ok()
        (current,) = (tmp_path / "xdg" / "tap-close").glob("oauth-*.json")
        legacy = current.parent / f"oauth-{client_slug(emu.client_id)}.json"
        record = {**json.loads(current.read_text()), "expires_at": 0}
        current.unlink()
        legacy.write_text(json.dumps(record))
        second = run_cli(config, tmp_path, name="second").assert_ok()
        assert emu.stats["invalid_grants"] == 0 and not legacy.exists()
        assert emu.current_refresh_tokens == {json.loads(current.read_text())["refresh_token"]}
        assert_clean([first, second], emulator_secrets(emu, config["refresh_token"]))


def test_missing_extra_is_one_clear_error(tmp_path: Path) -> None:
    without = ("import sys; sys.modules['psycopg'] = sys.modules['boto3'] = None; "
               "from tap_close.tap import TapClose; sys.argv[0] = 'tap-close'; TapClose.cli()")
    stores = {"postgres": "postgresql://u@127.0.0.1/db", "s3": "s3://bucket/key.json"}
    for extra, url in stores.items():
        with CloseEmulator(seed=86, n_leads=2) as emu:
            config = {**oauth_config(emu, ""), "token_store": url}
            del config["token_store_path"]
            path = tmp_path / f"{extra}.json"
            path.write_text(json.dumps(config))
            proc = subprocess.run([sys.executable, "-c", without, "--config", str(path)],
                                  capture_output=True, text=True, timeout=60, check=False)
            run = parse_run(proc.returncode, proc.stdout, proc.stderr)
            assert_one_clear_error(run, f"pip install 'tap-close[{extra}]'")
            assert config["refresh_token"] in emu.current_refresh_tokens


def test_token_store_and_token_store_path_together_is_a_config_error(tmp_path: Path) -> None:
    config = {"client_id": "c", "client_secret": "secret-value-1", "refresh_token": "rt-val-2",
              "token_store": "file:///tmp/a.json", "token_store_path": "/var/lib/b.json"}
    run = run_cli(config, tmp_path, name="both")
    assert_one_clear_error(run, "token_store or token_store_path")
    run = run_cli({**config, "token_store": "redis://h/0", "token_store_path": None},
                  tmp_path, name="scheme")
    assert_one_clear_error(run, "token_store must be a file://, postgresql:// or s3:// URL")
    assert_clean([run], ["secret-value-1", "rt-val-2"])


# --- tap-close-auth ------------------------------------------------------------------------------


def auth_cli(emu: CloseEmulator, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [AUTH_CLI, "--client-id", emu.client_id, "--redirect-uri", REDIRECT,
         "--token-url", emu.token_url, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
        env={**os.environ, "TAP_CLOSE_CLIENT_SECRET": emu.client_secret, **kwargs})


def finish(proc: subprocess.Popen, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = proc.communicate(stdin, timeout=60)
    return proc.returncode, out, err


def test_auth_requires_and_checks_state(tmp_path: Path) -> None:
    store = str(tmp_path / "s.json")
    with CloseEmulator(seed=87, n_leads=2) as emu:
        code = emu.issue_auth_code(REDIRECT)
        for pasted, extra, expected in [
            (f"{REDIRECT}?code={code}", ["--state", "s1"], "no `state`"),
            (f"{REDIRECT}?code={code}&state=other", ["--state", "s1"], "state differs"),
            (f"{REDIRECT}?code={code}&state=s1", [], "needs --state"),
        ]:
            rc, out, err = finish(auth_cli(emu, "--token-store-path", store, "--code", pasted,
                                           *extra))
            assert rc == 1 and expected in err and "Traceback" not in err, err
            assert emu.client_secret not in out + err and code not in out + err
        # interactively: the printed URL's state must come back
        rc, _, err = finish(auth_cli(emu, "--token-store-path", store),
                            f"{REDIRECT}?code={code}&state=guessed\n")
        assert rc == 1 and "state differs" in err
        assert emu.oauth.code_grants == 0, "no refused URL spent the code"
        rc, out, err = finish(auth_cli(emu, "--token-store-path", store, "--code", code))
        assert rc == 0, err  # a bare code is still accepted
        assert json.loads(out)["refresh_token"] in emu.current_refresh_tokens
        # a code that starts with "-" (token_urlsafe makes them) is a value, not an option
        dash = emu.issue_auth_code(REDIRECT, "-" + code[1:])
        rc, out, err = finish(auth_cli(emu, "--token-store-path", store, "--code", dash))
        assert rc == 0, err
        assert json.loads(out)["refresh_token"] in emu.current_refresh_tokens


def test_auth_output_is_private_and_the_store_locked(tmp_path: Path) -> None:
    out_file, store = tmp_path / "config.json", tmp_path / "store" / "s.json"
    out_file.write_text("{}")
    out_file.chmod(0o644)
    store.parent.mkdir()
    with CloseEmulator(seed=88, n_leads=2) as emu:
        code = emu.issue_auth_code(REDIRECT)
        lock = os.open(f"{store}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)  # a tap is refreshing
        proc = auth_cli(emu, "--token-store-path", str(store), "--code", code,
                        "--output", str(out_file))
        time.sleep(1.5)
        assert proc.poll() is None and not store.exists(), "the seeding waits for the lock"
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
        rc, _, err = finish(proc)
        assert rc == 0, err
        assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
        written = json.loads(out_file.read_text())
        assert written["client_secret"] == emu.client_secret
        assert written["refresh_token"] == json.loads(store.read_text())["refresh_token"]
        assert emu.client_secret not in err


@contextlib.contextmanager
def shared_store(kind: str) -> Iterator[tuple[str, Callable[[], dict]]]:
    """(token_store URL, read the one record in it) on a real PostgreSQL or S3 server."""
    if kind == "postgresql":
        with postgres_store() as (url, query):
            yield url, lambda: query("SELECT record FROM tap_close_tokens")[0][0]
    else:
        with s3_server() as endpoint:
            yield (f"s3://{BUCKET}/seeded.json?endpoint_url={endpoint}",
                   lambda: s3_record(endpoint, "seeded.json"))


@pytest.mark.parametrize("kind", ["postgresql", "s3"])
def test_auth_seeds_a_shared_store_for_fresh_runners(kind: str, tmp_path: Path) -> None:
    with shared_store(kind) as (url, read), CloseEmulator(seed=89, n_leads=2) as emu:
        track_tokens(emu)
        code = emu.issue_auth_code(REDIRECT)
        rc, out, err = finish(auth_cli(emu, "--token-store", url, "--code", code, **AWS_ENV))
        assert rc == 0, err
        printed = json.loads(out)
        assert printed["token_store"] == url
        assert read()["refresh_token"] == printed["refresh_token"]
        settings = {**printed, "client_secret": emu.client_secret, "api_url": emu.api_url,
                    "oauth_token_url": emu.token_url}
        run = FreshRun(tmp_path, settings).run("first").assert_ok()
        assert run.ids("users") == emu.truth("users")
        assert emu.stats["token_refreshes"] == 0, "the seeded access token was used"
        assert_clean([run], emulator_secrets(emu))
