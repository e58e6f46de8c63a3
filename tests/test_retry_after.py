"""A 429's wait is bounded (issue 22, item 12): `Retry-After: 1e9` waits at most 300 s, and
a nonsense value (inf, nan, negative, text) falls back to the default short wait. A scripted
front server on 127.0.0.1 answers the first lead page with the 429, then forwards to the
emulator."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.scripted import ScriptedServer, forward, scripted
from tests.test_reliability_support import TapProcess, assert_clean, emulator_secrets

WAITING = re.compile(r"429 on GET /lead/; waiting ([0-9.e+]+|inf|nan)s")


@contextmanager
def throttled(emu: CloseEmulator, *retry_after: str) -> Iterator[ScriptedServer]:
    """The first lead requests get a 429 each, with these Retry-After values in turn."""
    pending, lock = list(retry_after), threading.Lock()
    port = int(emu.url.rsplit(":", 1)[1].split("/")[0])

    def script(method: str, path: str, headers: dict, body: bytes) -> Any:
        with lock:
            value = pending.pop(0) if pending and path.startswith("/api/v1/lead/") else None
        if value is not None:
            return 429, {"Retry-After": value, "Content-Type": "application/json"}, (
                b'{"error": "API call count exceeded"}')
        return forward(port, method, path, headers, body)

    with scripted(script) as server:
        yield server


def test_nonsense_retry_after_uses_the_default_wait(tmp_path: Path) -> None:
    nonsense = ["inf", "nan", "-5", "soon"]
    with CloseEmulator(seed=95, n_leads=3) as emu, throttled(emu, *nonsense) as front:
        config = api_key_config(emu, api_url=front.url + "/api/v1")
        run = TapProcess(config, tmp_path).finish(timeout=60)
        run.assert_ok()
        assert run.ids("leads") == emu.truth("leads")
        waits = [float(w) for w in WAITING.findall(run.stderr)]
        assert len(waits) == len(nonsense) and max(waits) <= 1.25, waits
        assert_clean([run], emulator_secrets(emu))


def test_huge_retry_after_is_capped(tmp_path: Path) -> None:
    with CloseEmulator(seed=96, n_leads=3) as emu, throttled(emu, "1e9") as front:
        config = api_key_config(emu, api_url=front.url + "/api/v1")
        proc, runs = TapProcess(config, tmp_path), []
        reader = threading.Thread(target=lambda: runs.append(proc.finish(timeout=60)))
        reader.start()  # reads stdout (the SCHEMA messages) while the tap waits
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not WAITING.search(proc.stderr_path.read_text()):
            time.sleep(0.05)
        proc.send(signal.SIGTERM)
        reader.join(60)
        (run,) = runs
        (wait,) = WAITING.findall(run.stderr)
        assert 300 <= float(wait) <= 300.25, "capped at 300 s"
        assert run.returncode == 143 and "Traceback" not in run.stderr
