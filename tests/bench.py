"""`make bench`: tap-close against the emulator (fixed seed), and tap-closeio 1.6.6 beside it.

Scenarios (see the README's performance section):
1. 50 ms latency, no rate limit: tap-close vs tap-closeio on the same data, same streams.
2. A rate limit of R requests/s per endpoint group: leads records/s vs R x page size, 429s.
3. No latency: CPU-bound records/s, and peak RSS at ~10k vs ~200k records.
4. CPU per request: the client's own CPU time (its thread) per small GET, one at a time.
5. As 1, plus the events stream over 30 days of event history: tap-close vs tap-closeio.
6. Every activity stream under a rate limit per group, one group or one per path: 429s, s.
7. An hourly incremental run when nothing changed: its requests, by endpoint.
8. Three concurrent processes on one organization under a rate limit, against one process.
9. A bulk edit of every lead and every activity: the full sync, then the incremental run
   (peak RSS, wall time, requests of both; STATE bytes after each); before it, a bulk edit
   of the leads alone and the incremental run after it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from tests.emulator import CloseEmulator
from tests.harness import TAP
from tests.pg import postgres_server

CLOSEIO_PY = os.environ.get("CLOSEIO_PYTHON", ".bench-venv/bin/python")
# tap-closeio's base URL is a module constant: patch it here, in the harness only.
CLOSEIO_RUN = (
    "import sys, tap_closeio.http as h; h.BASE_URL = sys.argv.pop(1); "
    "from tap_closeio import main; sys.argv[0] = 'tap-closeio'; main()"
)
METRIC = re.compile(r"METRIC: (\{.*\})")
# tap-close streams holding what tap-closeio extracts (its leads embed contacts, opportunities)
COMPARABLE = {
    "leads", "contacts", "opportunities", "users", "lead_custom_fields", "tasks", "events",
    *(f"{k}_activities" for k in (
        "call", "email", "email_thread", "note", "meeting", "sms", "whatsapp_message",
        "created", "lead_status_change", "opportunity_status_change", "task_completed",
        "lead_merge", "form_submission")), "custom_activity_instances",
}


def run(cmd: list[str], *, env: dict | None = None, stdin_path: str | None = None) -> dict:
    """Run a command; return wall time, peak RSS (MiB), record counts and per-stream metrics."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        peak = 0
        while True:  # ru_maxrss would count the parent's memory inherited at fork: poll instead
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _peak_rss_kib(proc.pid))
            time.sleep(0.05)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode:
        sys.exit(f"{cmd[0]} failed:\n{stderr[-3000:]}")
    counts: Counter[str] = Counter()
    state = None
    for line in stdout.splitlines():
        if line.startswith('{"type":"RECORD"') or line.startswith('{"type": "RECORD"'):
            counts[json.loads(line)["stream"]] += 1
        elif '"type":"STATE"' in line or '"type": "STATE"' in line:
            state = json.loads(line)["value"]
    durations: dict[str, float] = {}
    for match in METRIC.finditer(stderr):
        point = json.loads(match.group(1))
        if point.get("metric") == "sync_duration":
            stream = point["tags"]["stream"]
            durations[stream] = durations.get(stream, 0) + point["value"]
    return {"wall": wall, "rss": peak / 1024, "cpu": usage.ru_utime + usage.ru_stime,
            "counts": counts, "durations": durations, "stderr": stderr, "state": state}


def _peak_rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) if match else 0


def tap_close(emu: CloseEmulator, tmp: Path, streams: set[str] | None = None,
              state: dict | None = None, **cfg) -> dict:
    return run(tap_command(emu, tmp, streams, state, **cfg))


def tap_command(emu: CloseEmulator, tmp: Path, streams: set[str] | None = None,
                state: dict | None = None, **cfg) -> list[str]:
    config = tmp / "close.json"
    config.write_text(json.dumps({"api_key": emu.api_key, "api_url": emu.api_url, **cfg}))
    cmd = [TAP, "--config", str(config)]
    if state is not None:
        (tmp / "state.json").write_text(json.dumps(state))
        cmd += ["--state", str(tmp / "state.json")]
    if streams is not None:
        catalog = json.loads(subprocess.run([*cmd, "--discover"], capture_output=True,
                                            text=True, check=True).stdout)
        for entry in catalog["streams"]:
            for md in entry["metadata"]:
                if md["breadcrumb"] == []:
                    md["metadata"]["selected"] = entry["tap_stream_id"] in streams
        (tmp / "catalog.json").write_text(json.dumps(catalog))
        cmd += ["--catalog", str(tmp / "catalog.json")]
    return cmd


def tap_closeio(emu: CloseEmulator, tmp: Path) -> dict:
    config = tmp / "closeio.json"
    config.write_text(json.dumps({"api_key": emu.api_key, "start_date": "2023-01-01T00:00:00Z"}))
    base = [CLOSEIO_PY, "-c", CLOSEIO_RUN, emu.api_url, "--config", str(config)]
    catalog = json.loads(subprocess.run([*base, "--discover"], capture_output=True, text=True,
                                        check=True).stdout)
    for entry in catalog["streams"]:
        entry["schema"]["selected"] = True
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = True
    (tmp / "closeio-catalog.json").write_text(json.dumps(catalog))
    return run([*base, "--catalog", str(tmp / "closeio-catalog.json")])


def rate(records: int, seconds: float) -> str:
    return f"{records / seconds:,.0f}" if seconds else "-"


def scenario_latency(tmp: Path, leads: int, events: int = 0) -> None:
    if events:
        print(f"\n## 5. 50 ms latency, {events:,} events over 30 days, the events stream and "
              f"every activity stream ({leads} leads, seed 42)\n")
    else:
        print(f"\n## 1. 50 ms latency, no rate limit ({leads} leads, seed 42)\n")
    with CloseEmulator(seed=42, n_leads=leads, latency=0.05, event_history=events) as emu:
        ours = tap_close(emu, tmp, COMPARABLE)
        our_requests = emu.stats["requests"]
        event_requests = sum(1 for e in emu.request_log if e["path"].startswith("/api/v1/event"))
    if events:
        print(f"tap-close `/event/` requests: {event_requests}\n")
    with CloseEmulator(seed=42, n_leads=leads, latency=0.05, event_history=events) as emu:
        if Path(CLOSEIO_PY).exists():
            theirs = tap_closeio(emu, tmp)
            their_requests = emu.stats["requests"]
        else:
            theirs, their_requests = None, 0
    print("| tap | wall s | records | records/s | requests | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name, res, reqs in (("tap-close", ours, our_requests),
                            ("tap-closeio 1.6.6", theirs, their_requests)):
        if res:
            total = sum(res["counts"].values())
            print(f"| {name} | {res['wall']:.1f} | {total:,} | {rate(total, res['wall'])} | "
                  f"{reqs:,} | {res['rss']:.0f} |")
    if theirs:
        print(f"\nWall-time ratio tap-closeio / tap-close: **{theirs['wall'] / ours['wall']:.1f}x**"
              f" (tap-closeio records per stream: {dict(theirs['counts'])})")
    else:
        print("\n(tap-closeio not installed: `make bench` installs it into .bench-venv)")


def scenario_rate_limit(tmp: Path, leads: int, limit: int) -> None:
    print(f"\n## 2. Rate limit {limit} requests/s per endpoint group ({leads} leads)\n")
    with CloseEmulator(seed=43, n_leads=leads, rate_limit=(limit, 1.0), latency=0.02) as emu:
        res = tap_close(emu, tmp, {"leads", "opportunities"})
        stats = dict(emu.stats)
    print("| stream | records | seconds | records/s | R x page size | fraction |")
    print("|---|---|---|---|---|---|")
    for stream, page in (("leads", 200), ("opportunities", 250)):
        n, secs = res["counts"][stream], res["durations"].get(stream, 0)
        ceiling = limit * page
        print(f"| {stream} | {n:,} | {secs:.2f} | {rate(n, secs)} | {ceiling:,} | "
              f"{(n / secs) / ceiling:.0%} |" if secs else f"| {stream} | {n} | - | - | - | - |")
    print(f"\nrequests {stats['requests']}, 429s received {stats['rate_limited']}")


def scenario_cpu(tmp: Path, sizes: list[int]) -> None:
    print("\n## 3. No latency: CPU-bound throughput and memory\n")
    print("| leads | records | wall s | records/s | tap CPU s | records per tap CPU-s "
          "| emulator CPU s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    peaks = []
    for leads in sizes:
        with CloseEmulator(seed=44, n_leads=leads) as emu:
            serving = time.process_time()  # this process: the emulator's threads
            res = tap_close(emu, tmp)
            serving = time.process_time() - serving
        total = sum(res["counts"].values())
        print(f"| {leads:,} | {total:,} | {res['wall']:.1f} | {rate(total, res['wall'])} | "
              f"{res['cpu']:.1f} | {rate(total, res['cpu'])} | {serving:.1f} | "
              f"{res['rss']:.1f} |")
        peaks.append(res["rss"])
    if len(peaks) > 1:
        print(f"\nPeak RSS, largest vs smallest run: **{peaks[-1] / peaks[0]:.2f}x**")


def scenario_request_cpu(calls: int) -> None:
    from tap_close.auth import api_key_auth
    from tap_close.client import CloseClient

    print(f"\n## 4. CPU per request ({calls} sequential GETs of one lead, best of 3)\n")
    # The emulator runs in its own process: this thread's CPU time is the client's alone.
    emu = subprocess.Popen([sys.executable, "-m", "tests.emulator", "--port", "0", "--leads",
                            "50", "--seed", "45"], stdout=subprocess.PIPE, text=True)
    try:
        assert emu.stdout is not None
        found = re.search(r"EMULATOR_URL=(\S+) API_KEY=(\S+)", emu.stdout.readline())
        assert found, "the emulator did not start"
        url, key = found.groups()
        client = CloseClient(f"{url}/api/v1", api_key_auth(key), workers=1)
        params = {"_fields": "id,display_name,date_updated", "_limit": 1}
        client.get("/lead/", params)  # connect once
        best = float("inf")
        for _ in range(3):
            started = time.thread_time()
            for _ in range(calls):
                client.get("/lead/", params)
            best = min(best, (time.thread_time() - started) / calls)
    finally:
        emu.terminate()
        emu.wait()
    print(f"tap-close client: **{best * 1e6:.0f} µs CPU per request** "
          f"(retries, rate limiter, auth, HTTP, JSON decode)")


ACTIVITY_STREAMS = {s for s in COMPARABLE if s.endswith("_activities")}


def scenario_activity_rate(tmp: Path, leads: int, limit: int) -> None:
    print(f"\n## 6. Rate limit {limit} requests/s per group, every activity stream "
          f"({leads} leads)\n")
    print("| Close's groups (emulator `rate_groups`) | activity records | requests | 429s "
          "| seconds (first to last request) | records/s | fastest possible s | fraction |")
    print("|---|---|---|---|---|---|---|---|")
    for groups in ("segment", "template"):
        with CloseEmulator(seed=46, n_leads=leads, rate_limit=(limit, 1.0), latency=0.02,
                           rate_groups=groups) as emu:
            res = tap_close(emu, tmp, ACTIVITY_STREAMS)
            log = [e for e in emu.request_log if e["path"].startswith("/api/v1/activity")]
        n = sum(res["counts"][s] for s in ACTIVITY_STREAMS)
        span = max(e["at"] for e in log) - min(e["at"] for e in log) if len(log) > 1 else 0
        refused = sum(1 for e in log if e["status"] == 429)
        # At R per budget: one budget for all, or the busiest path's own.
        per_path = Counter(e["path"] for e in log if e["status"] == 200)
        busiest = len(log) if groups == "segment" else max(per_path.values())
        fastest = (busiest - 1) / limit
        name = ("one per path template" if groups == "template"
                else "one for every `/activity/...` list")
        print(f"| {name} | {n:,} | {len(log)} | {refused} ({refused / max(len(log), 1):.1%}) "
              f"| {span:.1f} | {rate(n, span)} | {fastest:.1f} | "
              f"{fastest / span if span else 0:.0%} |")


def scenario_incremental(tmp: Path, leads: int) -> None:
    print(f"\n## 7. Hourly incremental run, nothing changed ({leads} leads, all streams)\n")
    with CloseEmulator(seed=47, n_leads=leads) as emu:
        first = tap_close(emu, tmp)
        before = len(emu.request_log)
        second = tap_close(emu, tmp, state=first["state"])
        log = emu.request_log[before:]
    groups = Counter(e["path"].split("/")[3] for e in log)
    streams = len([s for s in first["counts"] if first["counts"][s]])
    per_parent = sum(1 for e in log if re.search(r"/(comment|sequence_subscription)/$", e["path"])
                     or re.search(r"/group/group_", e["path"]))
    print(f"Second run: **{len(log)} requests**, {sum(second['counts'].values()):,} records "
          f"(full-table streams are re-sent whole); goal: one per selected stream plus one "
          f"event page (~{streams + 1}). Of them, {per_parent} are per-parent listings Close "
          f"requires (comments per thread, members per group, subscriptions per sequence): "
          f"**{len(log) - per_parent} without them**.\n")
    print("Requests by endpoint: " + ", ".join(f"{k} {v}" for k, v in groups.most_common()))


#: Scenario 8's three jobs: five activity streams and one CRM stream each.
JOBS = (
    {"call_activities", "email_activities", "email_thread_activities", "note_activities",
     "meeting_activities", "leads"},
    {"sms_activities", "whatsapp_message_activities", "created_activities",
     "lead_status_change_activities", "opportunity_status_change_activities", "opportunities"},
    {"task_completed_activities", "lead_merge_activities", "form_submission_activities",
     "custom_activity_instances", "tasks"},
)


def concurrent(emu: CloseEmulator, tmp: Path, jobs: tuple[set[str], ...],
               machines: int = 1, **cfg) -> dict:
    """Run the jobs at once; `machines` > 1: each job with its own temp dir (no budget file
    in common, as on separate machines). Wall time from the first start to the last exit."""
    cmds, envs = [], []
    for n, streams in enumerate(jobs):
        work = tmp / f"job{n}"
        work.mkdir(exist_ok=True)
        cmds.append(tap_command(emu, work, streams, **cfg))
        envs.append({**os.environ, "TMPDIR": str(work if machines > 1 else tmp)})
    before = len(emu.request_log)
    started = time.monotonic()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
             for cmd, env in zip(cmds, envs, strict=True)]
    codes = [p.wait() for p in procs]
    wall = time.monotonic() - started
    if any(codes):
        sys.exit(f"a job failed: exit codes {codes}")
    log = emu.request_log[before:]
    busy = [e["at"] for e in log if e["path"].startswith("/api/v1/activity/")]
    return {"wall": wall, "requests": len(log), "span": max(busy) - min(busy),
            "429": sum(1 for e in log if e["status"] == 429)}


def scenario_concurrent(tmp: Path, leads: int, limit: int) -> None:
    print(f"\n## 8. Three concurrent jobs on one organization, {limit} requests/s per group "
          f"({leads} leads; five activity streams and one CRM stream each)\n")
    print("| run | wall s | activity requests first to last, s | requests | 429s |")
    print("|---|---|---|---|---|")
    rows = (("one process, every stream", (set().union(*JOBS),), 1, False),
            ("three processes, one machine (shared budget file)", JOBS, 1, False),
            ("three processes, as on three machines (pacing only)", JOBS, 3, False),
            ("three processes, three machines, shared PostgreSQL budget", JOBS, 3, True))
    walls, spans = [], []
    for name, jobs, machines, shared in rows:
        with contextlib.ExitStack() as stack:
            emu = stack.enter_context(CloseEmulator(seed=48, n_leads=leads,
                                                    rate_limit=(limit, 1.0), latency=0.02))
            cfg = {"rate_limit_store": stack.enter_context(budget_table())} if shared else {}
            res = concurrent(emu, tmp, jobs, machines, **cfg)
        walls.append(res["wall"])
        spans.append(res["span"])
        print(f"| {name} | {res['wall']:.1f} | {res['span']:.1f} | {res['requests']} | "
              f"{res['429']} "
              f"({res['429'] / max(res['requests'], 1):.1%}) |")
    print(f"\nThree processes on one machine / one process: wall time **{walls[1] / walls[0]:.2f}x"
          f"**, activity span {spans[1] / spans[0]:.2f}x; as on three machines: "
          f"{walls[2] / walls[0]:.2f}x, {spans[2] / spans[0]:.2f}x; on three machines sharing "
          f"a PostgreSQL budget: {walls[3] / walls[0]:.2f}x, {spans[3] / spans[0]:.2f}x")


@contextlib.contextmanager
def budget_table() -> Iterator[str]:
    """A rate_limit_store URL: a fresh database on the local (or a private) PostgreSQL."""
    with postgres_server() as server, server.temporary_database("tap_close_bench") as db:
        password = f":{quote(server.password, safe='')}" if server.password else ""
        auth = f"{quote(server.user, safe='')}{password}@"
        yield f"postgresql://{auth}{server.host}:{server.port}/{db}"


BULK_STREAMS = {"leads", "contacts", "opportunities", "tasks", *ACTIVITY_STREAMS}


def bulk_edit(emu: CloseEmulator) -> int:
    """Edit every lead and every activity (as one click in Close would): the events logged."""
    before = len(emu.events)
    for lead_id in sorted(emu.data.leads):
        emu.update_lead(lead_id)
    for activity_id in sorted(emu.data.acts.items):
        emu.update_activity(activity_id)
    return len(emu.events) - before


def scenario_bulk(tmp: Path, leads: int) -> None:
    print(f"\n## 9. A bulk edit of every lead and every activity ({leads:,} leads; leads, "
          "contacts, opportunities, tasks, every activity stream)\n")
    with CloseEmulator(seed=48, n_leads=leads) as emu:
        full = tap_close(emu, tmp, BULK_STREAMS)
        full_requests, events = len(emu.request_log), len(emu.events)
        for lead_id in sorted(emu.data.leads):  # first a bulk edit of the leads alone
            emu.update_lead(lead_id)
        lead_changes = len(emu.events) - events
        leads_only = tap_close(emu, tmp, BULK_STREAMS, state=full["state"])
        leads_only_requests = len(emu.request_log) - full_requests
        before = len(emu.request_log)
        changes = bulk_edit(emu)
        incremental = tap_close(emu, tmp, BULK_STREAMS, state=leads_only["state"])
        incremental_requests = len(emu.request_log) - before
    print(f"{lead_changes:,} change events (every lead edited), then {changes:,}.\n")
    print("| run | wall s | records | requests | peak RSS MiB | STATE bytes |")
    print("|---|---|---|---|---|---|")
    for name, res, reqs in (("full sync", full, full_requests),
                            ("incremental after a bulk edit of every lead", leads_only,
                             leads_only_requests),
                            ("incremental after the bulk edit of every lead and activity",
                             incremental, incremental_requests)):
        size = len(json.dumps(res["state"], separators=(",", ":")))
        print(f"| {name} | {res['wall']:.1f} | {sum(res['counts'].values()):,} | {reqs:,} | "
              f"{res['rss']:.0f} | {size:,} |")
    print(f"\nIncremental / full: wall **{incremental['wall'] / full['wall']:.2f}x**, "
          f"requests **{incremental_requests / full_requests:.2f}x**, "
          f"peak RSS **{incremental['rss'] / full['rss']:.2f}x**")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-leads", type=int, default=2000)
    parser.add_argument("--rate-leads", type=int, default=4000)
    parser.add_argument("--rate-limit", type=int, default=10)
    parser.add_argument("--cpu-sizes", default="1000,20000")
    parser.add_argument("--request-calls", type=int, default=2000)
    parser.add_argument("--event-history", type=int, default=7500)
    parser.add_argument("--activity-leads", type=int, default=4000)
    parser.add_argument("--incremental-leads", type=int, default=1000)
    parser.add_argument("--concurrent-leads", type=int, default=4000)
    parser.add_argument("--bulk-leads", type=int, default=20000)
    parser.add_argument("--only", choices=["1", "2", "3", "4", "5", "6", "7", "8", "9"])
    args = parser.parse_args()
    print(f"# tap-close benchmark ({platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')})")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        if args.only in (None, "1"):
            scenario_latency(tmp, args.latency_leads)
        if args.only in (None, "2"):
            scenario_rate_limit(tmp, args.rate_leads, args.rate_limit)
        if args.only in (None, "3"):
            scenario_cpu(tmp, [int(n) for n in args.cpu_sizes.split(",")])
        if args.only in (None, "4"):
            scenario_request_cpu(args.request_calls)
        if args.only in (None, "5"):
            scenario_latency(tmp, args.latency_leads, args.event_history)
        if args.only in (None, "6"):
            scenario_activity_rate(tmp, args.activity_leads, args.rate_limit)
        if args.only in (None, "7"):
            scenario_incremental(tmp, args.incremental_leads)
        if args.only in (None, "8"):
            scenario_concurrent(tmp, args.concurrent_leads, args.rate_limit)
        if args.only in (None, "9"):
            scenario_bulk(tmp, args.bulk_leads)


if __name__ == "__main__":
    main()
