"""Every command the README (or meltano.yml) shows runs in a test as written, so the docs cannot
drift.

The commands are read from the README's ```bash blocks and the inline `code` of the README and
of meltano.yml's comments that starts with a command. Each must be listed in COVERED: run here
(against the emulator where a Close API is needed), run by another test (named), or not
runnable in a test (with the reason). A new or changed command fails
`test_every_readme_command_is_covered` until it is placed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.demo import RERUN_HEADER
from tests.emulator import CloseEmulator
from tests.harness import TAP

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MELTANO_YML_COMMENTS = "\n".join(line.split("#", 1)[1] for line in
                                 (ROOT / "meltano.yml").read_text().splitlines() if "#" in line)
BIN = str(Path(TAP).parent)
PROGRAMS = ("make", "tap-close", "meltano", "pip", "pipx", "curl", "python", "jq", "cp")
EMULATOR_PORT = 8765  # `make emulator`'s, and the README's curl examples'
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}

HERE = "run here"
QUICKSTART_JQ = (
    "jq '.streams[] |= (.tap_stream_id as $s | .metadata[] |= (if .breadcrumb == [] then "
    ".metadata.selected = ($s == \"leads\" or $s == \"contacts\" or $s == \"users\") else . "
    "end))' catalog.json > selected.json")
OAUTH_AUTH = (
    "TAP_CLOSE_CLIENT_SECRET=emu_secret tap-close-auth --client-id emu_client --redirect-uri "
    "https://example.com/close/callback --authorize-url http://127.0.0.1:8765/oauth2/authorize/ "
    "--token-url http://127.0.0.1:8765/oauth2/token/ --output oauth.json")
OAUTH_URLS = (
    "echo '{\"api_url\": \"http://127.0.0.1:8765/api/v1\", \"oauth_token_url\": "
    "\"http://127.0.0.1:8765/oauth2/token/\"}' > emulator.json")
MELTANO = "tests/test_meltano.py"
COVERED = {
    # Set up and check
    "make demo": HERE,
    "make test": "the suite itself (CI: .ci/run)",
    "make test PYTEST_ARGS=": "the suite itself, one test file after another (minutes)",
    # Install
    "pip install .": HERE,
    "tap-close --about": HERE,
    "tap-close --about --format=json": HERE,
    "tap-close --about --format=markdown": HERE,
    # Singer quickstart
    "cp sample_config.json config.json": HERE,
    "tap-close --config config.json --discover > catalog.json": HERE,
    QUICKSTART_JQ: HERE,
    "tap-close --config config.json --catalog selected.json > first.jsonl": HERE,
    "jq -c 'select(.type == \"STATE\") | .value' first.jsonl | tail -n 1 > state.json": HERE,
    "tap-close --config config.json --catalog selected.json --state state.json > next.jsonl": HERE,
    "meltano config set tap-close api_key ...": f"{MELTANO}::test_meltano_dev_commands (with "
                                                "the README's values; meltano.yml's comment)",
    "meltano run tap-close target-jsonl": f"{MELTANO}::test_meltano_dev_commands",
    # Authentication
    "TAP_CLOSE_CLIENT_SECRET=... tap-close-auth --client-id oa2client_... "
    "--redirect-uri https://example.com/close/callback": HERE,
    "tap-close-auth --help": HERE,
    # Meltano
    "pipx install meltano==4.4.1": f"{MELTANO} installs that version (MELTANO_REQUIREMENT) "
                                   "into its own virtualenv",
    "meltano config test tap-close": f"{MELTANO}::test_meltano_dev_commands",
    "meltano select tap-close --list --all": f"{MELTANO}::test_meltano_dev_commands",
    "meltano add --plugin-type extractor NAME": "a command form in prose",
    "meltano config list NAME": "a command form in prose",
    "meltano config set tap-close flattening_enabled true": f"{MELTANO}::test_meltano_dev_"
                                                           "commands",
    "meltano install tap-close": f"{MELTANO}::test_meltano_dev_commands",
    "meltano add --custom --plugin-type extractor tap-close": "interactive prompts; the block "
                                                              "to copy is meltano.yml's, checked "
                                                              f"by {MELTANO}",
    "meltano install": f"{MELTANO}::meltano (session fixture)",
    'meltano config set tap-close api_key "$CLOSE_API_KEY"': f"{MELTANO}::test_meltano_dev_"
                                                             "commands",
    "meltano config set target-postgres host db.example.com": "needs a PostgreSQL server at "
                                                              "that name; "
                                                              f"{MELTANO}::test_meltano_run_"
                                                              "target_postgres sets it by "
                                                              "TARGET_POSTGRES_* instead",
    "meltano run tap-close target-postgres": f"{MELTANO}::test_meltano_run_target_postgres "
                                             "(emulator environment)",
    "meltano state get dev:tap-close-to-target-postgres": f"{MELTANO}::test_meltano_dev_"
                                                          "commands (target-jsonl)",
    "meltano run --full-refresh ...": "a placeholder; --full-refresh: Meltano's",
    "make emulator": HERE,
    "meltano --environment=emulator run tap-close target-jsonl": f"{MELTANO}::test_meltano_run"
                                                                 "_target_jsonl_is_incremental",
    "meltano --environment=emulator run tap-close target-postgres": f"{MELTANO}::test_meltano_"
                                                                    "run_target_postgres",
    "meltano --environment=emulator config set target-postgres password ...": "a placeholder "
                                                                              "(a real password)",
    # Stream maps, scaling out
    "meltano select tap-close --exclude ...": "a placeholder (stream names)",
    "meltano select tap-close--crm --list": f"{MELTANO}::test_meltano_dev_commands",
    "meltano add utility airflow": "installs Airflow (an orchestrator, not part of the tap)",
    "meltano schedule": "Meltano's scheduler front end (needs an orchestrator)",
    "meltano run close-crm": "needs target-postgres at a real host: the job config is checked "
                             f"by {MELTANO}::test_meltano_dev_commands",
    "meltano config set": "a command name in prose",
    "meltano run": "a command name in prose",
    # Emulator
    "curl -s http://127.0.0.1:8765/_emulator/": HERE,
    "curl -s http://127.0.0.1:8765/_emulator/leads": HERE,
    "curl -s -X POST http://127.0.0.1:8765/_emulator/leads": HERE,
    "curl -s -X PUT http://127.0.0.1:8765/_emulator/leads/<id>": HERE,
    "curl -s -X POST http://127.0.0.1:8765/_emulator/contacts -d '{\"lead_id\": \"<id>\"}'": HERE,
    "curl -s -X POST http://127.0.0.1:8765/_emulator/activities -d '{\"type\": \"note\"}'": HERE,
    "curl -s -X DELETE http://127.0.0.1:8765/_emulator/leads/<id>": HERE,
    "curl -s -X POST http://127.0.0.1:8765/_emulator/clock -d '{\"minutes\": 10}'": HERE,
    'make emulator EMULATOR_ARGS="--port 9000 --leads 1000"': HERE,
    OAUTH_AUTH: HERE,
    OAUTH_URLS: HERE,
    "tap-close --config oauth.json --config emulator.json > oauth-run.jsonl": HERE,
    "make bench": "installs tap-closeio from PyPI and runs for minutes (tests/bench.py)",
    "make test-sdk-next": "the whole suite again on the newest singer-sdk (minutes, its own "
                          "venv); run by hand before moving the pin",
    # Before the first production run
    "tap-close-doctor --config config.json": "tests/test_doctor.py::test_doctor_reports_each_"
                                             "behaviour (the table)",
    "tap-close-doctor --config config.json --json": "tests/test_doctor.py::test_doctor_reports_"
                                                    "each_behaviour",
    # Token stores
    "pip install 'tap-close[postgres]'": "needs the published package; `make install` installs "
                                         "psycopg and boto3 with the test extra",
    "tap-close-auth --token-store URL ...": "tests/test_token_safety.py::"
                                            "test_auth_seeds_a_shared_store_for_fresh_runners",
}


def readme_commands() -> list[str]:
    """Commands of the ```bash blocks (continuations joined, comments dropped) and inline code
    that starts with a program name."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL):
        text = re.sub(r"\\\n\s*", "", block)
        for raw in text.splitlines():
            line = re.sub(r"\s+#\s.*$", "", raw).strip()
            if line and not line.startswith("#"):
                commands.append(line.removesuffix(" &").strip())
    for code in re.findall(r"`([^`\n]+)`", README + "\n" + MELTANO_YML_COMMENTS):
        words = code.split()
        if len(words) > 1 and words[0] in (*PROGRAMS, "tap-close-auth"):  # not a bare name
            commands.append(code.removesuffix(" &").strip())
    return list(dict.fromkeys(commands))


def test_every_readme_command_is_covered() -> None:
    missing = [c for c in readme_commands() if c not in COVERED]
    assert not missing, f"README commands no test runs (add them to COVERED): {missing}"
    stale = [c for c in COVERED if c not in readme_commands()]
    assert not stale, f"COVERED lists commands the README no longer shows: {stale}"
    for how in COVERED.values():  # the tests named exist
        for path, name in re.findall(r"(tests/\w+\.py)::(\w+)", how):
            assert f"def {name}(" in (ROOT / path).read_text(), how


def shell(command: str, *, env: dict[str, str] | None = None, stdin: str | None = None,
          timeout: float = 120, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run one README command with bash, with this checkout's venv first on PATH (as after
    `make install` and activating it)."""
    # As typed in a shell: not inside `make test`'s make (whose MAKEFLAGS/MAKELEVEL would make
    # a `make` command print "Entering/Leaving directory" lines).
    outer = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    run_env = {**outer, "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=cwd,
                          env=run_env, input=stdin, timeout=timeout, check=False)


def test_make_demo() -> None:
    started = time.monotonic()
    proc = shell("make demo", timeout=300)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    table = out[out.index("stream "):].split("\n\n")[0]
    rows = table.splitlines()[1:]
    assert len(rows) == 57 and any(r.startswith("events ") for r in rows), table
    assert all(len(r.split()) >= 3 for r in rows), "misaligned rows"
    for row in rows:  # records == truth in every stream (send_as: what the caller may see)
        _, records, truth, *_ = row.split()
        assert records == truth, row
    assert "Close lists only associations involving the caller" in out
    assert "(ok)" in out and "MISSING" not in out, out[-3000:]
    assert re.search(r"\d+ records \((\d+) tombstones\)", out), out[-1000:]
    assert int(re.search(r"\((\d+) tombstones\)", out).group(1)) > 0  # type: ignore[union-attr]
    assert elapsed < 60, f"make demo took {elapsed:.0f}s"
    # the commands it prints at the end run as printed, against `make emulator`
    printed = out[out.index(RERUN_HEADER) + len(RERUN_HEADER):].rstrip().splitlines()[1:]
    assert len(printed) == 4 and all(line.startswith("  ") for line in printed), printed
    with make_emulator("make emulator", EMULATOR_PORT):
        for command in (line.strip() for line in printed):
            done = shell(command, timeout=300)
            assert done.returncode == 0 and "Traceback" not in done.stderr, (
                command, done.stderr[-3000:])
            if "_emulator/leads" in command:
                added = json.loads(done.stdout)["id"]
    second = read_records(ROOT / "demo-output" / "run2.jsonl")
    assert {r["id"] for r in second["leads"]} == {added}


@pytest.mark.parametrize("command", [c for c, how in COVERED.items() if how == HERE
                                     and c.startswith(("tap-close --about",
                                                       "tap-close-auth --help"))])
def test_about_and_help(command: str) -> None:
    proc = shell(command)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if "json" in command:
        assert "api_key" in json.loads(proc.stdout)["settings"]["properties"]
    elif "markdown" in command:
        assert "| api_key |" in proc.stdout
    elif "auth" in command:
        assert "--redirect-uri" in proc.stdout
    else:
        assert "api_key" in proc.stdout


def test_tap_close_auth_against_the_emulator(tmp_path: Path) -> None:
    """The README's command as written, its client id and secret being the emulator's app."""
    command = next(c for c in COVERED if "tap-close-auth --client-id" in c)
    redirect = "https://example.com/close/callback"
    with CloseEmulator(client_id="oa2client_...", client_secret="...") as emu:
        code = emu.issue_auth_code(redirect)
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}",
               "TAP_CLOSE_OAUTH_TOKEN_URL": emu.token_url, "XDG_STATE_HOME": str(tmp_path)}
        proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stderr is not None and proc.stdin is not None
        shown = ""
        while "state=" not in shown:  # as a person would: the printed URL, then the paste
            line = proc.stderr.readline()
            assert line, "no authorize URL printed"
            shown += line
        state = re.search(r"[?&]state=([^&\s]+)", shown)
        assert state and "https://app.close.com/oauth2/authorize/" in shown
        out, err = proc.communicate(f"{redirect}?code={code}&state={state.group(1)}\n",
                                    timeout=120)
        live = emu.current_refresh_tokens
    assert proc.returncode == 0, err[-2000:]
    config = json.loads(out[out.index("{"):])
    assert config["refresh_token"] in live
    stores = [p for p in tmp_path.rglob("*.json") if config["refresh_token"] in p.read_text()]
    assert stores, "the default token store (under $XDG_STATE_HOME) holds the new chain"


# --- the emulator and its control endpoint ------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@contextlib.contextmanager
def make_emulator(command: str, port: int) -> Iterator[None]:
    """`make emulator` in the background, one such test at a time on this machine."""
    with open(f"/tmp/tap-close-emulator-{port}.lock", "w") as lock:  # noqa: S108
        fcntl.flock(lock, fcntl.LOCK_EX)
        deadline = time.monotonic() + 60
        while not port_free(port) and time.monotonic() < deadline:
            time.sleep(1)
        if not port_free(port):
            reason = f"port {port} is taken by another program"
            if IN_CI:
                pytest.fail(reason)
            pytest.skip(reason)
        proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
                                start_new_session=True)
        try:
            assert proc.stdout
            for line in proc.stdout:  # make echoes its command first
                if line.startswith("EMULATOR_URL="):
                    assert line.split()[0] == f"EMULATOR_URL=http://127.0.0.1:{port}", line
                    break
            else:
                pytest.fail(f"`{command}` did not start: {proc.wait()}")
            yield
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as the README says
            proc.wait(timeout=10)  # make itself ends by the signal
            assert port_free(port), "the emulator did not stop on Ctrl-C"


def test_make_emulator_and_control_endpoint() -> None:
    curls = [c for c, how in COVERED.items() if how == HERE and c.startswith("curl ")]
    assert len(curls) >= 8
    with make_emulator("make emulator", EMULATOR_PORT):
        replies: list[dict] = []
        new_lead = ""
        for command in curls:
            proc = shell(command.replace("<id>", new_lead), timeout=30)
            assert proc.returncode == 0, (command, proc.stderr)
            reply = json.loads(proc.stdout)
            assert "error" not in reply, (command, reply)
            replies.append(reply)
            if command.endswith("-X POST http://127.0.0.1:8765/_emulator/leads"):
                new_lead = reply["id"]
        assert new_lead.startswith("lead_")
        counts = replies[0]["streams"]
        assert len(counts) >= 57 and counts["leads"] == len(replies[1]["ids"]) == 200
        after = json.loads(shell(curls[0]).stdout)["streams"]
    assert after["leads"] == 200, "one lead added, then deleted"
    assert after["note_activities"] == counts["note_activities"] + 1
    assert after["events"] > counts["events"], "changes log Close events"


def test_make_emulator_with_options() -> None:
    command = next(c for c in COVERED if c.startswith("make emulator EMULATOR_ARGS"))
    with make_emulator(command, 9000):
        proc = shell("curl -s http://127.0.0.1:9000/_emulator/leads", timeout=30)
    assert len(json.loads(proc.stdout)["ids"]) == 1000


def test_no_readme_command_needs_the_venv_python() -> None:
    """`make` targets stand for `.venv/bin/python -m ...`: nobody needs to know the venv."""
    for command in readme_commands():
        assert not command.startswith(("python -m tests", ".venv/")), command
    assert sys.executable  # the tests themselves run in it


@pytest.mark.parametrize("secret", ["", "..."])
def test_tap_close_auth_without_a_terminal(secret: str) -> None:
    """No terminal and nothing on stdin (a cron job, Ctrl-D): one line naming what to give, exit
    2, no traceback; at the secret prompt, or with the secret given, at the paste prompt."""
    command = next(c for c in COVERED if "tap-close-auth --client-id" in c)
    if not secret:
        command = command.replace("TAP_CLOSE_CLIENT_SECRET=... ", "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_CLOSE_")}
    proc = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, start_new_session=True, timeout=60,
                          env={**env, "PATH": f"{BIN}:{env['PATH']}"}, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    hint = "TAP_CLOSE_CLIENT_SECRET" if not secret else "--code"
    assert last.startswith("tap-close-auth: no answer to") and hint in last, proc.stderr
    assert proc.stdout == ""


def test_every_tap_close_auth_option_has_help() -> None:
    proc = shell("tap-close-auth --help")
    options = re.findall(r"^  (--[\w-]+)(.*)$", proc.stdout, re.MULTILINE)
    assert len(options) >= 11, proc.stdout
    text = proc.stdout
    for option, _ in options:
        block = text[text.index(f"  {option}"):].split("\n  --")[0]
        assert len(" ".join(block.split()[2:])) > 10, f"{option} has no help text"


def test_pip_install_from_a_checkout(tmp_path: Path) -> None:
    """The README's `pip install .` in a fresh virtualenv: the built wheel installs, carries its
    licence and classifiers, and `tap-close --about` runs from it."""
    venv = tmp_path / "venv"
    uv = str(Path(sys.executable).with_name("uv"))
    subprocess.run([uv, "venv", "-q", "--seed", "--python", sys.executable, str(venv)],
                   check=True, timeout=120, capture_output=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    for command in ("pip install .", "tap-close --about"):
        proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        assert proc.returncode == 0, f"{command}: {proc.stderr[-3000:]}"
    assert "api_key" in proc.stdout
    (dist,) = venv.glob("lib/python*/site-packages/tap_close-*.dist-info")
    metadata = (dist / "METADATA").read_text()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Programming Language :: Python :: 3.10" in metadata
    assert "Apache License" in (dist / "licenses" / "LICENSE").read_text()
    assert not (dist / "direct_url.json").read_text().count('"editable": true')


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def read_records(path: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for message in jsonl(path):
        if message["type"] == "RECORD":
            out.setdefault(message["stream"], []).append(message["record"])
    return out


def test_singer_quickstart(tmp_path: Path) -> None:
    """The quickstart's commands in order, in a copy of the checkout's sample config (the user's
    edit: the emulator's key and URL): a selected full run, its last STATE, an incremental run."""
    readme = readme_commands()
    start = readme.index("cp sample_config.json config.json")
    commands = readme[start:start + 6]  # the README's order
    assert "jq" in commands[2] and commands[-1].endswith("> next.jsonl"), commands
    (tmp_path / "sample_config.json").write_text((ROOT / "sample_config.json").read_text())
    with CloseEmulator(seed=12, n_leads=8) as emu:
        for command in commands:
            if command.startswith("tap-close --config config.json --catalog selected.json "
                                  "--state"):
                truth = {s: emu.truth(s) for s in ("leads", "contacts", "users")}
                changed = emu.add_lead()  # a change between the runs
            proc = shell(command, cwd=tmp_path)
            assert proc.returncode == 0 and "Traceback" not in proc.stderr, (
                command, proc.stderr[-3000:])
            if command.startswith("cp "):  # the user sets the key (and here the URL)
                config = json.loads((tmp_path / "config.json").read_text())
                config.update(api_key=emu.api_key, api_url=emu.api_url)
                (tmp_path / "config.json").write_text(json.dumps(config))
        first = read_records(tmp_path / "first.jsonl")
        assert set(first) == {"leads", "contacts", "users"}, set(first)
        for stream in first:
            assert {r["id"] for r in first[stream]} == truth[stream], stream
        state = json.loads((tmp_path / "state.json").read_text())
        assert state["bookmarks"]["leads"]["replication_key_value"]
        after = read_records(tmp_path / "next.jsonl")
        assert {r["id"] for r in after["leads"]} == {changed}, "the second run is incremental"


def test_oauth_end_to_end_on_make_emulator(tmp_path: Path) -> None:
    """The Emulator section's OAuth commands as written, with `make emulator` running: the
    authorize URL is opened as a browser would (its redirect's address pasted)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_CLOSE_")}
    env.update(PATH=f"{BIN}:{env['PATH']}", XDG_STATE_HOME=str(tmp_path / "state"))
    with make_emulator("make emulator", EMULATOR_PORT):
        proc = subprocess.Popen(["bash", "-c", OAUTH_AUTH], cwd=tmp_path, env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stderr is not None
        shown = ""
        while "state=" not in shown:
            line = proc.stderr.readline()
            assert line, "no authorize URL printed"
            shown += line
        url = re.search(r"http://127\.0\.0\.1:8765/oauth2/authorize/\S+", shown)
        assert url, shown
        approved = requests.get(url.group(0), allow_redirects=False, timeout=30)
        assert approved.status_code == 302, approved.text
        redirected = approved.headers["Location"]
        assert redirected.startswith("https://example.com/close/callback?code=")
        _, err = proc.communicate(redirected + "\n", timeout=120)
        assert proc.returncode == 0, err[-2000:]
        saved = json.loads((tmp_path / "oauth.json").read_text())
        assert saved["client_secret"] == "emu_secret" and saved["refresh_token"]
        for command in (OAUTH_URLS, "tap-close --config oauth.json --config emulator.json > "
                                    "oauth-run.jsonl"):
            done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, (command, done.stderr[-3000:])
        leads = requests.get(f"http://127.0.0.1:{EMULATOR_PORT}/_emulator/leads", timeout=30)
    out = read_records(tmp_path / "oauth-run.jsonl")
    assert {r["id"] for r in out["leads"]} == set(leads.json()["ids"])
    assert list((tmp_path / "state").rglob("*.json")), "the default token store keeps the chain"
