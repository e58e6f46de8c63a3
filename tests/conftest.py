"""Shared fixtures: a fresh Close emulator per test and tap configs pointing at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.emulator import CloseEmulator

# The tap honours proxy variables (requests' trust_env): a proxy set in the environment that
# runs the tests must not carry the requests meant for the local emulator (tests/test_proxy.py
# sets them itself).
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
    os.environ.pop(_name, None)
    os.environ.pop(_name.lower(), None)


@pytest.fixture
def emulator() -> Iterator[CloseEmulator]:
    with CloseEmulator(seed=7, n_leads=40) as emu:
        yield emu


def api_key_config(emu: CloseEmulator, **extra: Any) -> dict[str, Any]:
    return {"api_key": emu.api_key, "api_url": emu.api_url, **extra}


def oauth_config(emu: CloseEmulator, store: str, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "refresh_token": emu.issue_refresh_token(),
        "api_url": emu.api_url,
        "oauth_token_url": emu.token_url,
        "token_store_path": store,
        **extra,
    }
