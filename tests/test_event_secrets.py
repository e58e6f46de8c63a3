"""The `events` stream drops secrets from event payloads, as the objects' own streams do."""

from __future__ import annotations

import datetime as dt

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import run_tap


def test_webhook_signature_key_not_in_event_payloads() -> None:
    with CloseEmulator(seed=13, n_leads=5) as emu:
        emu.data.clock.offset = -dt.timedelta(minutes=20)  # older than the 5-minute settle
        deleted, edited = emu.records("webhooks")[:2]
        emu.delete_object("webhooks", deleted["id"])  # previous_data: the whole webhook
        with emu.data.lock:  # an edit: data and previous_data both carry the webhook
            emu.data._event(emu.data._req("PUT", f"/api/v1/webhook/{edited['id']}/"),
                            "webhook", edited["id"], None, "updated", changed=["url"],
                            data={**edited, "url": "https://example.com/new"},
                            previous=edited)
        keys = [deleted["signature_key"], edited["signature_key"]]
        assert all(keys)
        run = run_tap(api_key_config(emu)).assert_ok()
        events = {e["object_id"]: e for e in run.records["events"]
                  if e["object_type"] == "webhook"}
        assert set(events) == {deleted["id"], edited["id"]}
        assert events[deleted["id"]]["previous_data"]["url"] == deleted["url"]
        assert events[edited["id"]]["data"]["url"] == "https://example.com/new"
        for event in events.values():
            for payload in (event["data"], event["previous_data"]):
                assert "signature_key" not in (payload or {})
        for key in keys:
            assert key not in run.stdout and key not in run.stderr
