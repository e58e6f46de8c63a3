"""The client's rate limiter against the emulator's fixed-window limiter, with replies
arriving out of order (random latency each way), many threads on one endpoint group."""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tap_close.budgetfile import BudgetFiles
from tap_close.ratelimit import RateLimiter, _Budget, endpoint_group, family
from tests.emulator.faults import RateLimiter as ServerLimiter
from tests.emulator.faults import ratelimit_header


def _simulate(limit: int, window: float, threads: int, seconds: float, seed: int, *,
              paths: tuple[str, ...] = ("/activity/",), groups: str = "segment",
              client: RateLimiter | None = None) -> dict:
    """Threads calling `paths` in turn through the client's limiter against the emulator's
    limiter (grouped per `groups`), replies overtaking each other."""
    client = client or RateLimiter()
    server = ServerLimiter(limit, window, groups)
    counts = {"ok": 0, "429": 0}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(n: int) -> None:
        rng = random.Random(seed + n)
        path = paths[n % len(paths)]
        group = endpoint_group("GET", path)
        while time.monotonic() < stop:
            ticket = client.acquire(group)
            time.sleep(rng.uniform(0, 0.03))  # to the server
            allowed, remaining, reset = server.hit(server.key("GET", path))
            time.sleep(rng.uniform(0, 0.03))  # back: replies overtake each other
            header = ratelimit_header(limit, remaining if allowed else 0, reset)
            client.release(ticket, header)
            with lock:
                counts["ok" if allowed else "429"] += 1
            if not allowed:
                client.pause(group, reset)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    counts["apart"] = sum(1 for g, key in client.budgets().items() if g == key)
    return counts


def test_out_of_order_replies_do_not_overspend_the_window() -> None:
    limit, window, seconds = 10, 0.25, 3.0
    counts = _simulate(limit, window, threads=16, seconds=seconds, seed=7)
    total = counts["ok"] + counts["429"]
    assert counts["429"] <= max(1, total // 100), counts  # at most 1 % answered 429
    # Most of the limit is used (loose here: the machine may be loaded; `make bench` measures).
    assert counts["ok"] >= 0.6 * limit * seconds / window, counts


@pytest.mark.parametrize("groups", ["segment", "template"])
def test_budgets_apart_are_learned_and_shared_ones_kept(groups: str) -> None:
    """Four activity lists; Close counts them on one budget, or each on its own (the client
    starts them on one and learns which count apart from the headers). Either way
    at most 1 % 429s, and most of what the server allows is used: one budget's worth, or
    (the lists learned apart) about four (loose bounds: the machine may be loaded)."""
    limit, window, seconds = 10, 0.25, 3.0
    paths = ("/activity/call/", "/activity/email/", "/activity/note/", "/activity/sms/")
    counts = _simulate(limit, window, 16, seconds, 11, paths=paths, groups=groups)
    total = counts["ok"] + counts["429"]
    assert counts["429"] <= max(1, total // 100), counts
    budgets = 1 if groups == "segment" else len(paths)
    # The last list left on the family's budget may keep it: it has it to itself.
    if groups == "segment":
        assert counts["apart"] == 0, counts
    else:
        assert counts["apart"] >= len(paths) - 1, counts
    assert counts["ok"] >= 0.6 * budgets * limit * seconds / window, counts


def test_first_reply_tells_the_limit_before_a_burst() -> None:
    client = RateLimiter()
    first = client.acquire("GET /g/")
    started: list[object] = []
    waiter = threading.Thread(target=lambda: started.append(client.acquire("GET /g/")))
    waiter.start()
    time.sleep(0.05)
    assert not started  # one request at a time until a reply is seen
    client.release(first, "limit=1, remaining=0, reset=0.2")
    waiter.join(timeout=5)
    assert started  # after the window's reset


def test_stale_header_never_raises_remaining() -> None:
    client = RateLimiter()
    end = time.monotonic() + 1

    def header(left: int) -> str:  # the server's window ends at `end`
        return f"limit=5, remaining={left}, reset={end - time.monotonic():.3f}"

    a = client.acquire("GET /g/")
    client.release(a, header(4))
    old, new = client.acquire("GET /g/"), client.acquire("GET /g/")  # both in this window
    client.release(new, header(1))
    client.release(old, header(2))  # started earlier, replied later
    assert client._groups["GET /g/*"].remaining == 1
    assert "GET /g/" not in client._groups  # one counter: no budget of its own


def test_groups_are_path_templates_within_a_family() -> None:
    assert endpoint_group("get", "/lead/lead_Ab3xYz/") == "GET /lead/{id}/"
    assert endpoint_group("GET", "/activity/status_change/lead/?x=1") == (
        "GET /activity/status_change/lead/")
    assert endpoint_group("GET", "/custom_field_schema/activity/actitype_7Qp/") == (
        "GET /custom_field_schema/activity/{id}/")
    assert endpoint_group("GET", "/sequence_subscription/") == "GET /sequence_subscription/"
    assert family("GET /activity/call/") == family("GET /activity/") == "GET /activity/*"


def _activity_run(tmp_path, groups: str, leads: int, rate: tuple[int, float]):
    from tests.bench import ACTIVITY_STREAMS
    from tests.conftest import api_key_config
    from tests.emulator import CloseEmulator
    from tests.harness import run_tap
    from tests.test_reliability_support import selected_catalog

    with CloseEmulator(seed=46, n_leads=leads, rate_limit=rate, latency=0.01,
                       rate_groups=groups) as emu:
        config = api_key_config(emu)
        run = run_tap(config, catalog=selected_catalog(config, tmp_path, ACTIVITY_STREAMS))
        run.assert_ok()
        assert "others spend the budget of GET /activity/*" not in run.stderr  # alone
        for stream in ACTIVITY_STREAMS:
            assert run.ids(stream) == emu.truth(stream), stream
        log = [e for e in emu.request_log if e["path"].startswith("/api/v1/activity")]
        counts = {s: len(emu.truth(s)) for s in ACTIVITY_STREAMS}
    return run, log, counts


def test_every_activity_stream_under_a_rate_limit_wastes_no_budget(tmp_path) -> None:
    """Close counts the 14 activity lists on one budget (emulator `rate_groups="segment"`):
    they stay on their family's budget (nothing is seen to count apart), pages past a list's
    end are asked only with budget nobody waits for, so the group's requests stay near the
    fewest possible (offset pages overlap by 5 rows), with no 429."""
    run, log, counts = _activity_run(tmp_path, "segment", 300, (20, 1.0))
    fewest = sum(1 + max(0, -(-(n - 100) // 95)) for n in counts.values())
    assert "counts apart" not in run.stderr
    assert not [e for e in log if e["status"] == 429]
    assert len(log) <= fewest + len(counts) // 2, (len(log), fewest)


def test_activity_lists_counted_apart_get_a_budget_each(tmp_path) -> None:
    """Close counts each path template on its own budget (`rate_groups="template"`): the
    lists leave their family's budget once a header shows another counter, so together they
    go well past one budget's rate (a generous bound: 1.5x; about 2.7x measured), and the
    429s stay within 1 %."""
    limit, window = 5, 0.5
    run, log, counts = _activity_run(tmp_path, "template", 1000, (limit, window))
    refused = [e for e in log if e["status"] == 429]
    assert len(refused) <= max(1, len(log) // 100), (len(refused), len(log))
    apart = {line.split("Rate limit: ", 1)[1].split(" ", 2)[1]
             for line in run.stderr.splitlines() if "counts apart" in line}
    assert len(apart) >= len(counts) // 2, apart
    span = max(e["at"] for e in log) - min(e["at"] for e in log)
    assert len(log) / span > 1.5 * limit / window, (len(log), span)


def _select(catalog: dict, streams: set[str]) -> dict:
    catalog = copy.deepcopy(catalog)
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def test_three_processes_on_one_organization_share_its_budget(tmp_path) -> None:
    """Three tap processes at once on one organization and key (README "Scaling out"), five
    activity streams and one CRM stream each: through the budget file they share under the
    temp dir they keep within Close's budget together. Every record arrives, and 429s stay
    rare (a generous bound, 3 %; the target is 1 %; without sharing it was 23-27 %)."""
    from tests.bench import JOBS
    from tests.conftest import api_key_config
    from tests.emulator import CloseEmulator
    from tests.harness import run_tap
    from tests.test_reliability_support import selected_catalog

    shared = tmp_path / "tmp"
    shared.mkdir()
    with CloseEmulator(seed=48, n_leads=150, rate_limit=(10, 0.5), latency=0.01) as emu:
        config = api_key_config(emu)
        catalog = selected_catalog(config, tmp_path, set())
        before = len(emu.request_log)
        with ThreadPoolExecutor(len(JOBS)) as pool:
            runs = list(pool.map(lambda job: run_tap(config, catalog=_select(catalog, job),
                                                     env={"TMPDIR": str(shared)}), JOBS))
        log = emu.request_log[before:]
        for run, job in zip(runs, JOBS, strict=True):
            run.assert_ok()
            assert "others spend the budget of GET /activity/*" not in run.stderr  # all seen
            for stream in job:
                assert run.ids(stream) == emu.truth(stream), stream
    assert list(shared.glob("tap-close-budgets/*/GET*activity.json"))  # they met there
    refused = sum(1 for e in log if e["status"] == 429)
    assert refused <= 1 + len(log) * 3 // 100, (refused, len(log))


@pytest.mark.parametrize("groups", ["segment", "template"])
def test_doctor_reports_the_groups_it_observed(groups: str, tmp_path) -> None:
    """`tap-close-doctor` calls `/activity/call/` and later `/activity/` in one window:
    on one counter the second shows fewer calls left (shares), else as many (own budget)."""
    from tests.conftest import api_key_config
    from tests.emulator import CloseEmulator
    from tests.test_doctor import doctor

    with CloseEmulator(seed=3, rate_limit=(500, 60.0), rate_groups=groups) as emu:
        proc = doctor(api_key_config(emu), tmp_path, "--json")
    told = json.loads(proc.stdout)["rate_limit_groups"]
    assert told["GET /activity/"] == (
        "shares GET /activity/call/" if groups == "segment" else "own budget"), told


_HOLDER = """
import fcntl, json, os, sys, time
path = sys.argv[1]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
budget = {"limit": 5, "remaining": 5, "reset_at": None, "window": 1.0,
          "started": time.monotonic(), "inflight": {str(os.getpid()): [5, time.monotonic()]}}
os.write(fd, json.dumps({"at": time.monotonic(), "budgets": {"GET /activity/*": budget}}).encode())
print("held", flush=True)
time.sleep(60)
"""


def test_a_crashed_process_blocks_no_one(tmp_path) -> None:
    """A process killed while it holds the family's file lock, with the whole budget in
    flight: the kernel drops its lock and, its pid gone, its calls stop counting."""
    files = BudgetFiles(tmp_path / "budgets")
    path = str(files._path("GET /activity/*"))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, path], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    finally:
        holder.kill()
        holder.wait()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(
        RateLimiter(files).acquire("GET /activity/call/")), daemon=True)
    waiter.start()
    waiter.join(timeout=10)
    assert got, "blocked by a dead process"


def test_old_budget_files_are_swept(tmp_path) -> None:
    """Files nobody wrote for an hour go (a test run leaves one directory per emulator)."""
    old, fresh = tmp_path / "a1" / "GET_lead.json", tmp_path / "a2" / "GET_lead.json"
    for path in (old, fresh):
        path.parent.mkdir()
        path.write_text("{}")
    hours_ago = time.time() - 7200
    os.utime(old, (hours_ago, hours_ago))
    BudgetFiles(tmp_path / "mine")
    assert not old.exists() and fresh.exists()


def test_others_spending_the_budget_are_estimated_and_one_process_is_alone() -> None:
    """Header-only pacing (jobs on machines that share nothing): another client spends half
    of each window unseen; our limiter's estimate of the jobs spending the budget (`crowd`)
    rises to about two, so it paces to its share. Alone, the estimate stays one (no slower)."""
    limit, window = 20, 0.5
    server = ServerLimiter(limit, window)
    key = server.key("GET", "/activity/")
    stop = time.monotonic() + 3.0

    def other() -> None:  # about half the budget, paced, as a job elsewhere would
        while time.monotonic() < stop:
            server.hit(key)
            time.sleep(window / (limit / 2))

    def ours(client: RateLimiter) -> None:
        group = endpoint_group("GET", "/activity/")
        while time.monotonic() < stop:
            ticket = client.acquire(group)
            time.sleep(0.005)
            allowed, remaining, reset = server.hit(key)
            client.release(ticket, ratelimit_header(limit, remaining if allowed else 0, reset))
            if not allowed:
                client.pause(group, reset)

    crowded, alone = RateLimiter(), RateLimiter()
    threads = [threading.Thread(target=other)] + [
        threading.Thread(target=ours, args=(crowded,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1.4 <= crowded._groups["GET /activity/*"].crowd <= 4, crowded._groups
    _simulate(limit, window, threads=8, seconds=1.5, seed=5, client=alone)
    assert alone._groups["GET /activity/*"].crowd == 1.0


def on_three_machines(emu, config: dict, tmp_path) -> tuple[list, list[dict], list]:
    """The bench's three jobs at once, each with a temp dir of its own (as on three
    machines: no budget file in common): (runs, the emulator's requests meanwhile, dirs)."""
    from tests.bench import JOBS
    from tests.harness import run_tap
    from tests.test_reliability_support import selected_catalog

    catalog = selected_catalog(config, tmp_path, set())
    dirs = [tmp_path / f"machine{n}" for n in range(len(JOBS))]
    for path in dirs:
        path.mkdir()
    before = len(emu.request_log)
    with ThreadPoolExecutor(len(JOBS)) as pool:
        runs = list(pool.map(lambda job, tmp: run_tap(
            config, catalog=_select(catalog, job), env={"TMPDIR": str(tmp)}), JOBS, dirs))
    return runs, emu.request_log[before:], dirs


def test_three_processes_sharing_nothing_see_each_other_in_the_headers(tmp_path) -> None:
    """The three jobs as on three machines (a temp dir each, no budget store), pacing to the
    share the headers show them (their estimates and 429s depend on timing: `make bench` 8
    measures them): every record arrives, 429s and all."""
    from tests.bench import JOBS
    from tests.conftest import api_key_config
    from tests.emulator import CloseEmulator

    with CloseEmulator(seed=48, n_leads=150, rate_limit=(10, 0.5), latency=0.01) as emu:
        runs, log, _ = on_three_machines(emu, api_key_config(emu), tmp_path)
        for run, job in zip(runs, JOBS, strict=True):
            run.assert_ok()
            for stream in job:
                assert run.ids(stream) == emu.truth(stream), stream
    seen = sum("others spend the budget of GET /activity/*" in run.stderr for run in runs)
    refused = sum(1 for e in log if e["status"] == 429)
    print(f"\nsharing nothing: {refused} 429s of {len(log)} requests; {seen} of 3 saw others")


def test_a_windows_last_calls_are_left_to_the_others_unseen() -> None:
    """Jobs that share nothing each see the same stale `remaining` at a window's end: with
    others estimated (`crowd` 3), two calls left are left to them (no lottery); alone, both
    are ours; with four left, ours too."""
    def limiter(crowd: float, left: int) -> RateLimiter:
        client = RateLimiter()
        client.release(client.acquire("GET /g/"), f"limit=10, remaining={left}, reset=0.5")
        client._groups["GET /g/*"].carried = crowd
        return client

    crowded = [limiter(3.0, 2) for _ in range(20)]  # not one wins a lottery
    assert all(isinstance(client._try("GET /g/"), float) for client in crowded)
    assert not isinstance(limiter(1.0, 2)._try("GET /g/"), float)
    assert not isinstance(limiter(3.0, 4)._try("GET /g/"), float)


def test_a_rising_crowd_is_carried_whole_and_a_falling_one_by_half() -> None:
    """Others just started: the next window is paced to share from its first call; others
    that stopped are forgotten over a few windows; alone (guess 1) stays 1."""
    budget = _Budget(guess=3.0)
    budget.next_window()
    assert (budget.carried, budget.guess, budget.crowd) == (3.0, 0.0, 3.0)
    budget.guess = 1.0
    budget.next_window()
    assert budget.crowd == 2.0
    alone = _Budget(guess=1.0)
    alone.next_window()
    assert alone.crowd == 1.0
