"""CLI: python -m tests.emulator --port 8765 --seed 1 --leads 200 [--rate-limit 10/1]."""

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
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 = any free port")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--leads", type=int, default=200)
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--api-key", default="api_emulator_key")
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--rate-limit", type=_rate, default=None, metavar="LIMIT/SECONDS")
    p.add_argument("--rate-groups", choices=["segment", "template"], default="segment",
                   help="rate-limit groups: method + first path segment, or + path template")
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--fault-seed", type=int, default=0)
    p.add_argument("--event-history", type=int, default=0, help="pre-seeded past events")
    p.add_argument("--compress", action="store_true", help="gzip + chunked replies")
    p.add_argument("--max-url-bytes", type=int, default=None,
                   help="answer longer URLs with 414 (see --url-limit-status)")
    p.add_argument("--url-limit-status", type=int, choices=[400, 414], default=414)
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
        host=args.host,
        port=args.port,
    )
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    emu.start()
    print(f"EMULATOR_URL={emu.url} API_KEY={args.api_key}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
