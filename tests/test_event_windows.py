"""The event log read in concurrent date windows: exact whatever cuts where.

Every event here is one of `TIES` sharing a whole second, at every second of the range, so
each window bound (whole seconds) and page boundary cuts through a group of equal
`date_updated`. Expected ids come from the emulator's log and the tap's own bookmarks.
"""

from __future__ import annotations

import datetime as dt
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import TapRun, run_tap
from tests.test_reliability_support import TapProcess, selected_catalog

UTC = dt.timezone.utc
SECONDS, TIES, PAGE = 240, 4, 20  # 960 events, pages of 20 (Close's cap is 50)


def when(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def event_requests(emu: CloseEmulator) -> list[dict]:
    return [e for e in emu.request_log if e["path"] == "/api/v1/event/" and e["status"] == 200]


def ids_between(emu: CloseEmulator, lower: dt.datetime | None, upper: dt.datetime) -> set[str]:
    return {e["id"] for e in emu.events
            if (lower is None or when(e["date_updated"]) >= lower)
            and when(e["date_updated"]) < upper}


def bookmark(run: TapRun) -> dt.datetime:
    assert run.state is not None
    return when(run.state["bookmarks"]["events"]["replication_key_value"])


def events_only(emu: CloseEmulator, tmp: Path, **extra) -> tuple[dict, dict]:
    config = api_key_config(emu, **extra)
    return config, selected_catalog(config, tmp, {"events"})


@pytest.mark.parametrize("workers", [1, 6])
@pytest.mark.parametrize("quirks", [(), ("event_cursor_unbounded",)])
def test_windows_cut_through_equal_timestamps(tmp_path: Path, workers: int, quirks) -> None:
    # 5 ms a reply: the limiter's Little's-law bound (rate x latency) leaves room for every
    # idle worker at the first split offer; replies in under a millisecond allowed one only,
    # and the number of windows then hung on timing.
    with CloseEmulator(seed=62, n_leads=6, max_limit={"event": PAGE}, quirks=quirks,
                       latency=0.005) as emu:
        grid = emu.data.seed_event_grid(SECONDS, TIES, newest=dt.timedelta(minutes=5, seconds=20))
        config, catalog = events_only(emu, tmp_path, max_concurrency=workers)
        # A first run: 30 days, with every event in its last minutes (a burst).
        first = run_tap(config, catalog=catalog).assert_ok()
        assert first.ids("events") == set(grid) == ids_between(emu, None, bookmark(first))
        assert len(first.records["events"]) == len(grid), "no event twice"

        # From a bookmark on a group of equal dates a quarter into the grid, with every older
        # event below it: the group is read, nothing older is walked (whatever the cursor
        # keeps), and the grid fills the range, so windows are cut inside it.
        start = when(emu.events[len(grid) // 4]["date_updated"])
        state = {"bookmarks": {"events": {"replication_key": "date_updated",
                                          "replication_key_value": start.isoformat()}}}
        before = len(event_requests(emu))
        second = run_tap(config, catalog=catalog, state=state).assert_ok()
        assert second.ids("events") == ids_between(emu, start, bookmark(second))
        assert len(second.records["events"]) == len(second.ids("events")), "no event twice"
        asked = event_requests(emu)[before:]
        pages = -(-len(second.ids("events")) // PAGE)
        assert len(asked) <= pages + 2 * workers, f"{len(asked)} requests for {pages} pages"
        bounds = {when(e["params"]["date_updated__gte"]) for e in asked
                  if "date_updated__gte" in e["params"]}
        if workers > 1:
            assert len(bounds) >= 3, "the range was split into windows"
            dates = {when(e["date_updated"]) for e in emu.events}
            assert len(bounds & dates) >= 2, "window bounds land on groups of equal dates"
        else:
            assert bounds == {start}

        before = len(event_requests(emu))
        third = run_tap(config, catalog=catalog, state=second.state).assert_ok()
        assert third.ids("events") == ids_between(emu, bookmark(second), bookmark(third))
        assert len(event_requests(emu)) - before == 1, "an empty gap is one request"


def test_events_inside_the_five_minute_rescan_come_next_run(tmp_path: Path) -> None:
    """Events younger than 5 minutes wait for a later run; each run takes [last bookmark,
    its start - 5 min), so across runs every event is emitted exactly once."""
    with CloseEmulator(seed=63, n_leads=6, max_limit={"event": PAGE}) as emu:
        emu.data.seed_event_grid(60, TIES, newest=dt.timedelta(minutes=7))
        config, catalog = events_only(emu, tmp_path, max_concurrency=4)
        seeded = time.monotonic()
        # 4 groups 5 minutes minus 5-9 seconds old: inside this run's re-scan window
        fresh = emu.data.seed_event_grid(4, TIES, newest=dt.timedelta(minutes=5, seconds=-9))
        first = run_tap(config, catalog=catalog).assert_ok()
        assert not first.ids("events") & set(fresh), "younger than 5 minutes: not yet"
        assert first.ids("events") == ids_between(emu, None, bookmark(first))
        time.sleep(max(0.0, 10 - (time.monotonic() - seeded)))
        before = len(event_requests(emu))
        second = run_tap(config, catalog=catalog, state=first.state).assert_ok()
        assert set(fresh) <= second.ids("events")
        assert len(event_requests(emu)) - before == 1, "a small gap (one page) is one request"
        assert second.ids("events") == ids_between(emu, bookmark(first), bookmark(second))
        emitted = first.records["events"] + second.records["events"]
        assert len(emitted) == len({r["id"] for r in emitted}), "no event in both runs"


def test_an_interrupted_scan_resumes_from_complete_windows(tmp_path: Path) -> None:
    with CloseEmulator(seed=64, n_leads=6, max_limit={"event": PAGE}, latency=0.01) as emu:
        grid = emu.data.seed_event_grid(SECONDS, TIES, newest=dt.timedelta(minutes=8))
        config, catalog = events_only(emu, tmp_path, max_concurrency=6)

        def mid_scan(line: str, _: list[str]) -> bool:
            return line.startswith('{"type":"STATE"') and '"date_updated"' in line

        killed = TapProcess(config, tmp_path, catalog=catalog, state_every=10, name="killed")
        assert killed.read_until(mid_scan), "the scan ended before a window completed"
        killed.send(signal.SIGKILL)
        partial = killed.finish()
        mark = bookmark(partial)
        assert mark < max(when(e["date_updated"]) for e in emu.events), "a mid-scan bookmark"
        resumed = run_tap(config, catalog=catalog, state=partial.state).assert_ok()
        assert resumed.ids("events") == ids_between(emu, mark, bookmark(resumed))
        assert partial.ids("events") | resumed.ids("events") == set(grid)
