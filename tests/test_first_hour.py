"""What a new user sees first: log lines that say which stream they are about, no noise, and an
emulator whose options are explained."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import run_tap


def test_log_names_the_stream_and_leaves_out_noise() -> None:
    with CloseEmulator(seed=4, n_leads=5) as emu:
        run = run_tap(api_key_config(emu)).assert_ok()
    log = run.stderr
    assert "Skipping parse of env var settings" not in log
    unsorted = [line for line in log.splitlines() if "unsorted" in line]
    assert unsorted, "no unsorted stream was synced: the check below checked nothing"
    for line in unsorted:
        found = re.search(r"Stream '(\w+)' is read unsorted", line)
        assert found and found.group(1) in run.records, line
        assert "WARNING" not in line, line


def test_emulator_help_explains_every_option() -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.emulator", "--help"], capture_output=True,
                          text=True, timeout=60, check=True)
    options = re.findall(r"^  (--[\w-]+)[^\n]*$", proc.stdout, re.MULTILINE)
    assert len(options) >= 12, proc.stdout
    for option in options:
        block = proc.stdout[proc.stdout.index(f"  {option}"):].split("\n  -")[0]
        words = block.split()[1:]
        if words and (words[0].isupper() or words[0].startswith("{")):
            words = words[1:]  # the metavar
        assert len(" ".join(words)) > 10, f"{option} has no help text"
