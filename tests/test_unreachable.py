"""A Close host that cannot be reached: the real CLIs name the host and the cause in one line,
exit non-zero, and give up within seconds when the host never answered."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import urllib3

from tap_close.client import wire_error
from tap_close.errors import Unreachable
from tests.harness import TAP

DOCTOR = str(Path(sys.executable).with_name("tap-close-doctor"))
KEY = "api_unreachable_test_key"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_file(tmp_path: Path, port: int) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"api_key": KEY, "api_url": f"http://127.0.0.1:{port}/api/v1"}))
    return str(path)


def test_tap_names_host_and_cause_once_and_gives_up_soon(tmp_path: Path) -> None:
    port = closed_port()
    started = time.monotonic()
    proc = subprocess.run([TAP, "--config", config_file(tmp_path, port), "--discover"],
                          capture_output=True, text=True, timeout=120, check=False)
    elapsed = time.monotonic() - started
    log = proc.stderr
    assert proc.returncode != 0 and "Traceback" not in log, log[-3000:]
    host = f"127.0.0.1:{port}"
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"cannot reach {host}: connection refused" in errors[0], log
    named = [line for line in log.splitlines() if "WARNING" in line and host in line]
    assert len(named) == 1 and "connection refused" in named[0], log  # once, then counted
    assert elapsed < 30, f"gave up after {elapsed:.0f}s"  # 3 tries per request, not 8
    assert KEY not in log + proc.stdout


def test_doctor_exits_non_zero_naming_host_and_cause(tmp_path: Path) -> None:
    port = closed_port()
    proc = subprocess.run([DOCTOR, "--config", config_file(tmp_path, port)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == "", "no report table for a host that never answered"
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"ERROR cannot reach 127.0.0.1:{port}: connection refused (check api_url, "
                    "DNS, the network or proxy)"), proc.stderr
    assert "Traceback" not in proc.stderr and KEY not in proc.stderr


def test_dns_failure_is_named() -> None:
    """requests' exception for a name that does not resolve (built as urllib3 raises it: a
    lookup here would leave 127.0.0.1) is a DNS failure, not a generic connect error."""
    conn = urllib3.connection.HTTPConnection("close.invalid")
    lookup = urllib3.exceptions.NameResolutionError("close.invalid", conn,
                                                    socket.gaierror(-2, "Name not known"))
    exc = requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", lookup))  # type: ignore[arg-type]
    error = wire_error(exc, 5)
    assert isinstance(error, Unreachable) and str(error).startswith("DNS lookup failed"), error
