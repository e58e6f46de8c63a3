"""README, meltano.yml and sample_config.json stay in step with the tap's config schema."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tap_close.tap import SETTINGS, unknown_settings, validate_settings
from tests.harness import TAP

ROOT = Path(__file__).resolve().parents[1]
OWN_SETTINGS = list(SETTINGS.to_dict()["properties"])


def test_readme_settings_table_matches_about() -> None:
    about = subprocess.run([TAP, "--about", "--format=markdown"], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    rows = [line for line in about.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in OWN_SETTINGS]
    assert len(rows) == len(OWN_SETTINGS)
    readme = (ROOT / "README.md").read_text()
    for row in rows:
        assert row in readme, f"README settings table is out of date: {row[:60]}"


def test_meltano_settings_match_config_schema() -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-close")
    settings = {s["name"]: s for s in tap["settings"]}
    assert list(settings)[:len(OWN_SETTINGS)] == OWN_SETTINGS  # then the SDK's
    schema = SETTINGS.to_dict()["properties"]
    for name in OWN_SETTINGS:
        setting = settings[name]
        assert bool(setting.get("sensitive")) == bool(schema[name].get("secret")), name
        assert setting.get("label") and setting.get("description"), name
    groups = [["api_key"], ["client_id", "client_secret", "refresh_token"]]
    assert tap["settings_group_validation"] == groups


def test_sample_config_is_valid() -> None:
    sample = json.loads((ROOT / "sample_config.json").read_text())
    validate_settings(sample)
    assert not unknown_settings(sample)


def test_readme_streams_table_lists_every_stream() -> None:
    from tap_close.streams import STREAM_TYPES

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Streams"):readme.index("## HTTP behaviour")]
    for stream in STREAM_TYPES:
        assert f"`{stream.name}`" in section, f"{stream.name} missing from the README streams"
