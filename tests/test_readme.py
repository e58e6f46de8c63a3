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

from tests.emulator import CloseEmulator
from tests.harness import TAP

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MELTANO_YML_COMMENTS = "\n".join(line.split("#", 1)[1] for line in
                                 (ROOT / "meltano.yml").read_text().splitlines() if "#" in line)
BIN = str(Path(TAP).parent)
PROGRAMS = ("make", "tap-close", "meltano", "pip", "pipx", "curl", "python")
EMULATOR_PORT = 8765  # `make emulator`'s, and the README's curl examples'
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}

HERE = "run here"
MELTANO = "tests/test_meltano.py"
COVERED = {
    # Set up and check
    "make demo": HERE,
    "make test": "the suite itself (CI: .ci/run)",
    # Install
    "pip install git+<this repository>": "needs the published repository; `make install` "
                                         "runs `pip install -e '.[test]'`",
    "tap-close --about": HERE,
    "tap-close --about --format=json": HERE,
    "tap-close --about --format=markdown": HERE,
    "meltano add --custom extractor tap-close": "interactive prompts; the block it creates is "
                                                f"meltano.yml's, checked by {MELTANO}",
    "meltano config set tap-close api_key api_...": f"{MELTANO}::test_meltano_dev_commands",
    "meltano config set tap-close api_key ...": f"{MELTANO}::test_meltano_dev_commands (with "
                                                "the README's values; meltano.yml's comment)",
    "meltano run tap-close target-jsonl": f"{MELTANO}::test_meltano_dev_commands",
    # Authentication
    "TAP_CLOSE_CLIENT_SECRET=... tap-close-auth --client-id oa2client_... "
    "--redirect-uri https://example.com/close/callback": HERE,
    "tap-close-auth --help": HERE,
    # Meltano
    "pipx install meltano": f"{MELTANO} installs meltano>=4.4,<5 into its own virtualenv",
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
    run_env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})}
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


@pytest.mark.parametrize("command", [c for c, how in COVERED.items() if how == HERE
                                     and c.startswith(("tap-close --", "tap-close-auth --"))])
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
