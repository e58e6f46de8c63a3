"""The local Close API emulator (`make emulator`): the API on /api/v1/, OAuth on /oauth2/
(authorize: approved at once, redirecting with a code; token; revoke), the control endpoint
/_emulator/. Runs until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .emulator import CloseEmulator


def _rate(text: str) -> tuple[int, float]:
    limit, _, window = text.partition("/")
    return int(limit), float(window or 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8765,
                   help="port to listen on, 0 = any free port (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the generated organization: same seed, same data")
    p.add_argument("--leads", type=int, default=200,
                   help="leads to generate, with their contacts, opportunities, activities")
    p.add_argument("--users", type=int, default=4, help="users of the organization")
    p.add_argument("--api-key", default="api_emulator_key",
                   help="the one API key accepted (default: %(default)s)")
    p.add_argument("--latency", type=float, default=0.0,
                   help="seconds added to every API reply")
    p.add_argument("--rate-limit", type=_rate, default=None, metavar="LIMIT/SECONDS",
                   help="Close-style rate limit per endpoint group, answered with 429")
    p.add_argument("--rate-groups", choices=["segment", "template"], default="segment",
                   help="rate-limit groups: method + first path segment, or + path template")
    p.add_argument("--fault-rate", type=float, default=0.0,
                   help="share of API requests answered with a random fault (5xx, 429, reset)")
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the random faults")
    p.add_argument("--event-history", type=int, default=0, help="pre-seeded past events")
    p.add_argument("--compress", action="store_true", help="gzip + chunked replies")
    p.add_argument("--max-url-bytes", type=int, default=None,
                   help="answer longer URLs with 414 (see --url-limit-status)")
    p.add_argument("--url-limit-status", type=int, choices=[400, 414], default=414,
                   help="status for an over-long URL: 414, or 400 naming the request line")
    p.add_argument("--clock-offset", type=float, default=0.0,
                   help="seconds the server's clock runs ahead (+) or behind (-) real time")
    p.add_argument("--commit-lag", type=float, default=0.0,
                   help="a written row shows in lists 0.5-1x this many seconds later")
    p.add_argument("--future-share", type=float, default=0.0,
                   help="share of new leads/activities dated --future-hours ahead")
    p.add_argument("--future-hours", type=float, default=3.0,
                   help="how far ahead those rows are dated")
    args = p.parse_args(argv)

    emu = CloseEmulator(
        seed=args.seed,
        n_leads=args.leads,
        n_users=args.users,
        api_key=args.api_key,
        latency=args.latency,
        rate_limit=args.rate_limit,
        rate_groups=args.rate_groups,
        fault_rate=args.fault_rate,
        fault_seed=args.fault_seed,
        event_history=args.event_history,
        compress=args.compress,
        max_url_bytes=args.max_url_bytes,
        url_limit_status=args.url_limit_status,
        clock_offset=args.clock_offset,
        commit_lag=args.commit_lag,
        future_share=args.future_share,
        future_hours=args.future_hours,
        host=args.host,
        port=args.port,
    )
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    emu.start()
    print(f"EMULATOR_URL={emu.url} API_KEY={args.api_key} OAUTH_CLIENT_ID={emu.client_id} "
          f"OAUTH_CLIENT_SECRET={emu.client_secret}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
