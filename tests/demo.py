"""`make demo`: run tap-close against the local Close emulator into JSONL files."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.emulator import CloseEmulator
from tests.harness import TAP

OUT = Path("demo-output")
SAMPLE_COLUMNS = {
    "leads": ("id", "display_name", "status_label", "date_updated"),
    "contacts": ("id", "lead_id", "name", "title"),
    "opportunities": ("id", "lead_name", "status_label", "value", "date_updated"),
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.jsonl"):
        old.unlink()
    with CloseEmulator(seed=1, n_leads=300, latency=0.005) as emu, \
            tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "config.json")
        config.write_text(json.dumps({"api_key": emu.api_key, "api_url": emu.api_url}))
        print(f"Close emulator on {emu.api_url}; running: tap-close --config {config}\n")
        started = time.monotonic()
        proc = subprocess.Popen([TAP, "--config", str(config)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        counts: Counter[str] = Counter()
        samples: dict[str, list[dict]] = {}
        files: dict[str, object] = {}
        assert proc.stdout and proc.stderr
        for line in proc.stdout:
            msg = json.loads(line)
            if msg.get("type") != "RECORD":
                continue
            stream = msg["stream"]
            if stream not in files:
                files[stream] = (OUT / f"{stream}.jsonl").open("w")
            files[stream].write(json.dumps(msg["record"]) + "\n")  # type: ignore[attr-defined]
            counts[stream] += 1
            samples.setdefault(stream, [])
            if len(samples[stream]) < 3:
                samples[stream].append(msg["record"])
        for fh in files.values():
            fh.close()  # type: ignore[attr-defined]
        stderr = proc.stderr.read()
        code = proc.wait()
        elapsed = time.monotonic() - started
        progress = [ln for ln in stderr.splitlines() if "Beginning" in ln or "HTTP summary" in ln]
        print("\n".join(ln.split("| ")[-1] for ln in progress))
        if code:
            print(stderr[-3000:], file=sys.stderr)
            sys.exit(code)
        print(f"\n{'stream':<28}{'records':>8}  {'truth':>6}")
        for stream in sorted(counts):
            print(f"{stream:<28}{counts[stream]:>8}  {len(emu.truth(stream)):>6}")
        total = sum(counts.values())
        print(f"\n{total} records in {elapsed:.2f}s ({total / elapsed:,.0f} records/s, "
              f"{emu.stats['requests']} HTTP requests); files in {OUT}/")
        for stream, columns in SAMPLE_COLUMNS.items():
            print(f"\nSample {stream}:")
            for row in samples.get(stream, []):
                print("  " + " | ".join(str(row.get(c)) for c in columns))
        custom = [k for k in (samples.get("leads") or [{}])[0] if k.startswith("custom_cf_")]
        print(f"\nTyped custom field columns on leads: {len(custom)} (e.g. {custom[:2]})")


if __name__ == "__main__":
    main()
