"""Small pure pieces: header parsing, endpoint groups, token store, code extraction."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from requests.structures import CaseInsensitiveDict

from tap_close.auth import AuthError
from tap_close.auth_cli import authorize_url, extract_code
from tap_close.client import Reply, _rate_reset
from tap_close.ratelimit import endpoint_group, parse_ratelimit
from tap_close.stores.file import FileStore, default_path
from tap_close.streams.base import format_ts, parse_ts


def test_parse_ratelimit_is_case_insensitive_with_decimals() -> None:
    assert parse_ratelimit("limit=100, remaining=50, reset=5.25") == {
        "limit": 100.0, "remaining": 50.0, "reset": 5.25}
    assert parse_ratelimit("LIMIT=3,Remaining=0,RESET=0.5")["remaining"] == 0
    assert parse_ratelimit(None) == {}


def test_endpoint_group() -> None:
    assert endpoint_group("get", "/lead/") == "GET /lead/"
    assert endpoint_group("GET", "/activity/call/") == "GET /activity/call/"


def _response(status: int, body: object, headers: dict[str, str]) -> Reply:
    return Reply(status, CaseInsensitiveDict(headers), json.dumps(body).encode())


@pytest.mark.parametrize(("body", "headers", "expected"), [
    ({"error": {"rate_reset": 2.5}}, {}, 2.5),
    ({"rate_reset": 1.5, "error": "x"}, {}, 1.5),
    ({}, {"Retry-After": "3"}, 3.0),
    ({"rate_reset": 0.2}, {"RateLimit": "limit=1, remaining=0, reset=4.5"}, 4.5),
    ({}, {}, 1.0),
])
def test_rate_reset_takes_the_longest_wait(body, headers, expected) -> None:
    assert _rate_reset(_response(429, body, headers)) == expected


def test_timestamps_normalise_to_utc() -> None:
    assert format_ts(parse_ts("2019-11-04T11:04:13.014979")) == "2019-11-04T11:04:13.014979+00:00"
    assert format_ts(parse_ts("2024-01-01T02:00:00+02:00")) == "2024-01-01T00:00:00.000000+00:00"
    assert parse_ts("not a date") is None and parse_ts(None) is None


def test_token_store_is_atomic_and_private(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "a" / "b" / "t.json", client_id="c", seed="s")
    with store.hold():
        assert store.load() is None
        store.prepare()  # the temp file exists before the token is spent
        assert len(list(store.path.parent.glob(".tmp-*"))) == 1
        chain = {"client_id": "c", "seed": "s"}  # what token_record writes
        store.save({**chain, "refresh_token": "r1"})
        store.save({**chain, "refresh_token": "r2"})
        assert store.load() == {**chain, "refresh_token": "r2"}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    names = sorted(p.name for p in store.path.parent.iterdir())
    assert names == ["t.json", "t.json.lock"]  # no temp files left


def test_damaged_token_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text("{not json")
    with pytest.raises(AuthError, match="token_store_path"):
        FileStore(path, client_id="c", seed="s").load()


def test_default_token_store_path_is_per_client_and_chain(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    paths = {default_path("client-a", "chain1"), default_path("client-b", "chain1"),
             default_path("client-a", "chain2")}
    assert len(paths) == 3 and {p.parent for p in paths} == {tmp_path / "tap-close"}
    monkeypatch.delenv("XDG_STATE_HOME")
    assert ".local/state/tap-close" in str(default_path("x", "y"))


def test_extract_code_accepts_url_or_code() -> None:
    assert extract_code("abc123", None) == "abc123"
    assert extract_code("https://x.example/cb?code=zz&state=s1", "s1") == "zz"
    with pytest.raises(AuthError, match="access_denied"):
        extract_code("https://x.example/cb?error=access_denied", "s1")
    with pytest.raises(AuthError, match="state"):
        extract_code("https://x.example/cb?code=zz&state=other", "s1")
    with pytest.raises(AuthError, match="no `state`"):
        extract_code("https://x.example/cb?code=zz", "s1")


def test_authorize_url() -> None:
    url = authorize_url("cid", "https://x.example/cb", "st")
    assert url.startswith("https://app.close.com/oauth2/authorize/?client_id=cid")
    assert "response_type=code" in url and "redirect_uri=https%3A%2F%2Fx.example%2Fcb" in url


def test_unwritable_store_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a file where the store's directory should be: even root fails
    with pytest.raises(AuthError, match="token_store_path"):
        FileStore(blocker / "x" / "t.json", client_id="c", seed="s").save({"refresh_token": "r"})


def test_export_json_reader_handles_arrays_lines_and_chunking() -> None:
    from tap_close.export import iter_json_values

    rows = [{"id": f"lead_{i}", "n": i, "s": "x" * (i % 7)} for i in range(50)]
    array = json.dumps(rows)
    lines = "\n".join(json.dumps(r) for r in rows)
    for text in (array, lines):
        for size in (1, 3, 64, 100000):
            chunks = [text[i:i + size] for i in range(0, len(text), size)]
            assert list(iter_json_values(chunks)) == rows


def test_normalize_ts_fast_path_matches_the_slow_one() -> None:
    from tap_close.streams.base import normalize_ts

    for value in ("2024-03-05T10:01:22.123456+00:00", "2019-11-04T11:04:13.014979",
                  "2024-03-05T12:01:22.123456+02:00", "2024-03-05T10:01:22+00:00",
                  "2024-03-05T10:01:22Z", "2024-03-05"):
        assert normalize_ts(value) == format_ts(parse_ts(value))
    assert normalize_ts("garbage") is None


def test_key_page_decodes_keys_now_and_rows_when_read() -> None:
    import msgspec

    from tap_close.client import KeyPage, key_page_decoder

    body = json.dumps({"has_more": True, "data": [
        {"id": "a", "date_updated": "2024-01-01T00:00:00+00:00", "name": "x", "n": [1, {"y": 2}]},
        {"id": "b", "name": "no key"}, {"id": 3, "date_updated": None}]}).encode()
    page = key_page_decoder("date_updated")(body)
    assert isinstance(page, KeyPage) and page.has_more and page.data is body
    assert page.keys == [("2024-01-01T00:00:00+00:00", "a"), (None, "b"), (None, 3)]
    assert [row["id"] for row in page] == ["a", "b", 3]
    page.skip.add(1)
    assert [row["id"] for row in page] == ["a", 3]
    last = key_page_decoder("id")(b'{"data": []}')
    assert (last.has_more, last.keys, list(last)) == (False, [], [])
    with pytest.raises(msgspec.DecodeError):
        key_page_decoder("id")(b'{"data": ["not an object"]}')
    with pytest.raises(msgspec.DecodeError):
        key_page_decoder("id")(b'{"data": [{"id": "a"}')


@pytest.mark.parametrize("params", [
    {"lead_id": "lead_abc123", "_limit": 100, "_skip": 0, "missing": None},
    {"_fields": "id,date_updated", "query": 'date_updated >= "2024-01-01T00:00" sort:x'},
    {"a b": "ü/&=+", "flag": True, "n": 1.5, "safe": "-._~"},
])
def test_query_string_equals_urlencode(params: dict) -> None:
    from urllib.parse import urlencode

    from tap_close.client import query_string
    assert query_string(params) == urlencode([(k, v) for k, v in params.items() if v is not None])
