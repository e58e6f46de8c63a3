"""An id made only of dots cannot change the request path (issue 22, item 10): `..` from a
reply is sent as `%2E%2E`, not as a dot segment (`GET /api/v1/group/../` is `GET /api/v1/`).
A scripted front server on 127.0.0.1 adds such a group to the emulator's list and records
the raw request paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import run_tap
from tests.scripted import HOP as scripted_hop
from tests.scripted import forward, scripted

HOP = scripted_hop | {"accept-encoding", "content-encoding"}  # the JSON is edited
DOTS = {"id": "..", "name": "dots", "date_created": "2024-01-01T00:00:00+00:00",
        "date_updated": "2024-01-01T00:00:00+00:00", "organization_id": "x"}


def test_dot_ids_are_quoted(tmp_path: Path) -> None:
    with CloseEmulator(seed=98, n_leads=2) as emu:
        port = int(emu.url.rsplit(":", 1)[1].split("/")[0])

        def script(method: str, path: str, headers: dict, body: bytes) -> Any:
            if path.startswith("/api/v1/group/%2E%2E/"):
                return 200, {"Content-Type": "application/json"}, json.dumps(
                    {"name": "dots", "members": []}).encode()
            status, sent, data = forward(port, method, path, headers, body, hop=HOP)
            if path.startswith("/api/v1/group/?") and status == 200:
                page = json.loads(data)
                page["data"].append(DOTS)
                data = json.dumps(page).encode()
            return status, sent, data

        with scripted(script) as front:
            run = run_tap(api_key_config(emu, api_url=front.url + "/api/v1")).assert_ok()
        paths = [path for _, path, _ in front.seen]
        assert any(p.startswith("/api/v1/group/%2E%2E/") for p in paths), paths
        assert not any("/../" in p or p.split("?")[0] == "/api/v1/" for p in paths)
        assert ".." in run.ids("groups")
        assert run.ids("groups") - {".."} == emu.truth("groups")
