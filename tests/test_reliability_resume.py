"""Crash and resume: kill the tap mid-sync, rerun it with the last STATE it wrote.

The union of what both runs emitted must be exactly the truth in every stream: no gap, and
(after deletes between the runs) no resurrected rows. SIGTERM must stop the tap promptly with
one log line, a non-zero exit and no traceback.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import TapRun
from tests.test_reliability_faults import merged, truth
from tests.test_reliability_support import SIGNALS, TapProcess, assert_clean, emulator_secrets

Stop = Callable[[str, list[str]], bool]


def after_records(n: int, stream: str | None = None) -> Stop:
    """Stop after the n-th RECORD (of `stream`, if given)."""
    tag = f'"stream":"{stream}"' if stream else ""
    seen = Counter[str]()

    def stop(line: str, _: list[str]) -> bool:
        if line.startswith('{"type":"RECORD"') and tag in line:
            seen["n"] += 1
        return seen["n"] >= n

    return stop


def after_states(n: int) -> Stop:
    """Stop right after the n-th STATE message: between two streams."""
    def stop(line: str, lines: list[str]) -> bool:
        return line.startswith('{"type":"STATE"') and sum(
            ln.startswith('{"type":"STATE"') for ln in lines) >= n

    return stop


def _random_points(seed: int, count: int, upper: int) -> list[int]:
    return sorted(random.Random(seed).sample(range(5, upper), count))


# (signal, where, stop condition); a full sync of this dataset writes a few hundred records
POINTS: list[tuple[str, str, Stop]] = [
    ("SIGKILL", "mid-page of leads (page = 10)", after_records(14, "leads")),
    ("SIGKILL", "at a stream boundary (right after the 6th STATE)", after_states(6)),
    ("SIGKILL", "mid-window of tasks", after_records(17, "tasks")),
    *[("SIGKILL", f"random: after {n} records", after_records(n))
      for n in _random_points(11, 1, 300)],
    ("SIGTERM", "mid-page of opportunities", after_records(12, "opportunities")),
    *[("SIGTERM", f"random: after {n} records", after_records(n))
      for n in _random_points(12, 1, 300)],
]


def _emulator() -> CloseEmulator:
    return CloseEmulator(seed=41, n_leads=25, latency=0.005,
                         max_limit={"lead": 10, "opportunity": 10, "task": 10})


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[CloseEmulator]:
    with _emulator() as emu:
        yield emu


def interrupted(emu: CloseEmulator, tmp: Path, sig: str, stop: Stop, **kwargs) -> TapProcess:
    run = TapProcess(api_key_config(emu), tmp, name="killed", **kwargs)
    reached = run.read_until(stop)
    assert reached, "the sync finished before the kill point"
    run.send(SIGNALS[sig])
    return run


def assert_union_is_truth(runs: list[TapRun], emu: CloseEmulator, skip=("events",)) -> None:
    streams = sorted({s for run in runs for s in run.schemas} - set(skip))
    assert len(streams) > 50
    for stream in streams:
        assert merged(runs, stream) == truth(emu, stream), stream


@pytest.mark.parametrize(("sig", "where", "stop"), POINTS, ids=[f"{s}-{w}" for s, w, _ in POINTS])
def test_kill_and_resume_from_last_state(
    shared_emulator: CloseEmulator, tmp_path: Path, sig: str, where: str, stop: Stop
) -> None:
    emu = shared_emulator
    proc = interrupted(emu, tmp_path, sig, stop)
    killed = proc.finish()
    if sig == "SIGTERM":
        assert killed.returncode == 143, killed.stderr[-2000:]
        assert proc.exit_seconds is not None and proc.exit_seconds < 3
        assert "Traceback" not in killed.stderr
        assert "SIGTERM" in killed.stderr
    else:
        assert killed.returncode == -9
    resumed = TapProcess(api_key_config(emu), tmp_path, state=killed.state, name="resumed")
    done = resumed.finish().assert_ok()
    assert_union_is_truth([killed, done], emu, skip=())
    assert_clean([killed, done], emulator_secrets(emu))


def _mutate_emitted(emu: CloseEmulator, killed: TapRun) -> dict[str, str]:
    """Delete objects the killed run already emitted, edit one; return what was deleted."""
    gone: dict[str, str] = {}
    for stream in ("leads", "opportunities", "tasks", "note_activities", "call_activities"):
        emitted = sorted(killed.ids(stream) & emu.truth(stream))
        if not emitted:
            continue
        victim = emitted[len(emitted) // 2]
        if stream == "leads":
            emu.delete_lead(victim)
        elif stream == "opportunities":
            emu.delete_opportunity(victim)
        elif stream == "tasks":
            emu.delete_task(victim)
        elif victim in emu.truth(stream):
            emu.delete_activity(victim)
        gone[stream] = victim
    for stream in ("note_activities", "call_activities"):
        edited = sorted(killed.ids(stream) & emu.truth(stream))
        if edited:
            emu.update_activity(edited[0])
    return gone


@pytest.mark.parametrize(("sig", "stop", "state_every"), [
    ("SIGKILL", after_records(15, "leads"), None),
    ("SIGKILL", after_records(8, "tasks"), None),
    ("SIGTERM", after_records(15, "opportunities"), None),
    ("SIGKILL", after_records(13, "leads"), 7),  # the SDK's mid-stream STATE (every 7 here)
], ids=["leads", "tasks", "sigterm-opportunities", "midstream-state-leads"])
def test_deletes_between_crash_and_resume_are_not_lost(
    tmp_path: Path, sig: str, stop: Stop, state_every: int | None
) -> None:
    """Rows emitted before the crash and deleted before the resume get their tombstones."""
    with _emulator() as emu:
        killed = interrupted(emu, tmp_path, sig, stop, state_every=state_every).finish()
        gone = _mutate_emitted(emu, killed)
        assert gone
        resumed = TapProcess(api_key_config(emu), tmp_path, state=killed.state,
                             state_every=state_every, name="resumed").finish().assert_ok()
        assert_union_is_truth([killed, resumed], emu)
        for stream, victim in gone.items():
            assert victim not in merged([killed, resumed], stream), stream
        assert_clean([killed, resumed], emulator_secrets(emu))
