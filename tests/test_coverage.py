"""Every extractable Close object as a stream, equal to the emulator's truth."""

from __future__ import annotations

import pytest

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import run_tap

OBJECT_STREAMS = [
    "organizations", "memberships", "groups", "roles", "smart_views", "email_templates",
    "sms_templates", "sequences", "sequence_subscriptions", "outcomes", "phone_numbers",
    "blocked_phone_numbers", "connected_accounts", "dialers", "send_as", "scheduling_links",
    "shared_custom_fields", "custom_object_types", "custom_object_custom_fields",
    "custom_objects", "comment_threads", "comments", "integration_links", "webhooks",
    "email_bulk_actions", "edit_bulk_actions", "delete_bulk_actions",
    "sequence_subscription_bulk_actions",
]


@pytest.fixture(scope="module")
def full_run():
    with CloseEmulator(seed=12, n_leads=30) as emu:
        yield emu, run_tap(api_key_config(emu)).assert_ok()


@pytest.mark.parametrize("stream", OBJECT_STREAMS)
def test_stream_equals_truth(full_run, stream: str) -> None:
    emu, run = full_run
    truth = emu.truth(stream)
    if stream == "send_as":  # Close shows only associations involving the caller
        me = emu.data.user_ids[0]
        truth = {r["id"] for r in emu.records(stream)
                 if me in (r["allowing_user_id"], r["allowed_user_id"])}
    assert truth, f"the emulator has no {stream}"
    assert run.ids(stream) == truth
    ids = [r["id"] for r in run.records[stream]]
    assert len(ids) == len(set(ids)), "primary keys are unique"


def test_unsubscribed_emails_keyed_by_email(full_run) -> None:
    emu, run = full_run
    assert run.ids("unsubscribed_emails", key="email") == emu.truth("unsubscribed_emails")


def test_webhook_signature_key_never_emitted(full_run) -> None:
    emu, run = full_run
    keys = [w.get("signature_key") for w in emu.records("webhooks")]
    assert all(keys)
    for key in keys:
        assert key not in run.stdout and key not in run.stderr


def test_groups_have_members_and_memberships_have_flags(full_run) -> None:
    _, run = full_run
    assert all(g.get("members") for g in run.records["groups"])
    assert {m["is_active"] for m in run.records["memberships"]} == {True, False}


def test_custom_objects_are_typed(full_run) -> None:
    _, run = full_run
    schema = run.schemas["custom_objects"]["properties"]
    assert any(k.startswith("custom_cf_") for k in schema)
    assert any(k.startswith("custom_cf_") for r in run.records["custom_objects"] for k in r)


def test_full_table_streams_activate_versions(full_run) -> None:
    _, run = full_run
    versions = [line for line in run.stdout.splitlines() if '"ACTIVATE_VERSION"' in line]
    assert any('"stream":"users"' in v for v in versions)


def test_forbidden_endpoint_is_skipped_with_a_warning() -> None:
    with CloseEmulator(seed=12, n_leads=10, denied=("webhook",), plan_limited=("dialer",)) as emu:
        run = run_tap(api_key_config(emu)).assert_ok()
        warnings = [ln for ln in run.stderr.splitlines() if "Skipping stream" in ln]
        assert len(warnings) == 2 and any("webhooks" in w for w in warnings)
        assert not run.ids("webhooks") and not run.ids("dialers")
        assert run.ids("leads") == emu.truth("leads")
        assert run.ids("roles") == emu.truth("roles")


def test_custom_objects_incremental_through_events() -> None:
    with CloseEmulator(seed=12, n_leads=15) as emu:
        first = run_tap(api_key_config(emu)).assert_ok()
        listing = [e for e in emu.request_log if e["path"] == "/api/v1/data/search/"]
        assert listing, "first run lists custom objects through Advanced Filtering"
        victim = sorted(emu.truth("custom_objects"))[0]
        emu.delete_object("custom_objects", victim)
        before = len(emu.request_log)
        second = run_tap(api_key_config(emu), state=first.state).assert_ok()
        again = [e for e in emu.request_log[before:] if e["path"] == "/api/v1/custom_object/"]
        assert not again, "later runs read the event log, not every lead"
        assert {r["id"] for r in second.records["custom_objects"]
                if r.get("_sdc_deleted_at")} == {victim}
