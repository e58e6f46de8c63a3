"""Meltano end to end: this repo's meltano.yml, `meltano run tap-close target-jsonl` and
`meltano run tap-close target-postgres` (into a real PostgreSQL server) against the emulator.

Meltano itself goes into a separate virtualenv made once per test session (with `uv` from the
`test` extra when present: ~2 s; else venv + pip: ~30 s), so its dependency pins never touch the
tap's environment. The session's Meltano project is a copy of meltano.yml with `pip_url: -e
<this checkout>` (as the README says for another project), set up with the README's `meltano
install`. The pipelines run the README's commands as written, with only the `<PLUGIN>_<SETTING>`
overrides the README documents (the emulator's port, the test's database) and the Meltano
system database of the test (`MELTANO_DATABASE_URI`). Every test has its own system database,
database and emulator.

These tests need PyPI (Meltano, the loaders) and, for target-postgres, a PostgreSQL server (see
tests/pg.py). Outside CI they skip with the reason when either is missing; with CI=true they fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from psycopg import sql

from tap_close.tap import SETTINGS
from tests.emulator import CloseEmulator
from tests.harness import TAP
from tests.pg import PgServer, PgUnavailable, postgres_server

REPO = Path(__file__).resolve().parents[1]
MELTANO_REQUIREMENT = "meltano==4.4.1"  # the README's `pipx install meltano==4.4.1`
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}
STATE_ID = "{environment}:tap-close-to-{target}"
EMAIL_SALT = "pepper-for-tests"
CORE_STREAMS = {"leads", "contacts", "opportunities", "users", "lead_statuses", "pipelines"}
OWN_SETTINGS = set(SETTINGS.to_dict()["properties"])
# The `events` stream stops 5 minutes before the run starts (Close's advice), so the emulator's
# newest events are not expected in it.
NOT_COMPARED = {"events"}


def unavailable(reason: str) -> None:
    """Skip with the reason; in CI (CI=true) these tests must run, so fail instead."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this end-to-end test must not be skipped)", pytrace=False)
    pytest.skip(reason)


def key_of(stream: str) -> str:
    return "email" if stream == "unsubscribed_emails" else "id"


# --- meltano.yml itself (no Meltano needed) -------------------------------------------------------


def load_meltano_yml() -> dict[str, Any]:
    return yaml.safe_load((REPO / "meltano.yml").read_text())


def plugin(project: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    return next(p for p in project["plugins"][kind] if p["name"] == name)


def expected_kinds(prop: dict[str, Any]) -> set[str]:
    types = prop.get("type", [])
    types = {types} if isinstance(types, str) else set(types)
    types.discard("null")
    if types == {"string"}:
        return {"date_iso8601"} if prop.get("format") in ("date-time", "date") else {
            "string", "options", "file", "password"}
    if types == {"number"}:  # `decimal` cannot be dumped to the config file (Meltano 4.4)
        return {"integer", "decimal"}
    return {next(iter(types))} if len(types) == 1 else {"string"}


def tap_about() -> dict[str, Any]:
    return dict(json.loads(subprocess.run(
        [TAP, "--about", "--format=json"], capture_output=True, text=True, check=True, timeout=60,
    ).stdout))


def opt_in_properties(tmp_path: Path) -> set[str]:
    """`!stream.property` of every field the tap's own catalog leaves unselected by default."""
    with CloseEmulator(seed=1, n_leads=2) as emu:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"api_key": emu.api_key, "api_url": emu.api_url}))
        catalog = json.loads(subprocess.run(
            [TAP, "--config", str(config), "--discover"], capture_output=True, text=True,
            check=True, timeout=120).stdout)
    return {f"!{stream['tap_stream_id']}.{entry['breadcrumb'][-1]}"
            for stream in catalog["streams"] for entry in stream["metadata"]
            if entry["breadcrumb"] and entry["metadata"].get("selected-by-default") is False}


def assert_matches_about(tap: dict[str, Any], about: dict[str, Any]) -> None:
    """An extractor definition has every tap setting with its label, description, kind and
    sensitivity, and the capabilities `--about` reports."""
    props: dict[str, dict[str, Any]] = about["settings"]["properties"]
    assert tap["namespace"] == "tap_close"
    assert set(tap["capabilities"]) == set(about["capabilities"])
    assert tap["settings_group_validation"] == [
        ["api_key"], ["client_id", "client_secret", "refresh_token"]]
    settings = {s["name"]: s for s in tap["settings"]}
    hint = "update meltano.yml to match `tap-close --about --format=json`"
    # The SDK's built-in settings too: with their kinds, `meltano config set` stores booleans
    # and numbers as such.
    assert set(props) & OWN_SETTINGS == OWN_SETTINGS
    assert set(settings) == set(props), f"settings differ: {set(props) ^ set(settings)}; {hint}"
    for name, setting in settings.items():
        prop = props[name]
        assert setting.get("label") == prop.get("title"), f"{name}: label; {hint}"
        assert setting.get("kind") in expected_kinds(prop), f"{name}: kind; {hint}"
        assert bool(setting.get("sensitive")) == bool(prop.get("secret")), f"{name}: sensitive"
        assert setting.get("description"), f"{name}: no description"
        if name in OWN_SETTINGS:  # the SDK's own texts are shortened in meltano.yml
            assert " ".join(setting["description"].split()) == prop.get("description"), (
                f"{name}: description; {hint}")
        if "value" in setting:
            assert setting["value"] == prop.get("default"), f"{name}: default; {hint}"
    for group in tap["settings_group_validation"]:
        assert set(group) <= set(settings)


def test_meltano_yml_matches_tap_about(tmp_path: Path) -> None:
    """meltano.yml's extractor and the Meltano Hub definition (meltano-hub/tap-close.yml) agree
    with `tap-close --about`, with each other, and select all but the opt-in fields."""
    about = tap_about()
    project = load_meltano_yml()
    tap = plugin(project, "extractors", "tap-close")
    assert tap["pip_url"] == "-e ."
    tested = MELTANO_REQUIREMENT.split("==")[1]
    assert SpecifierSet(project["requires_meltano"]).contains(tested), "the tested Meltano"
    assert_matches_about(tap, about)
    hub = yaml.safe_load((REPO / "meltano-hub" / "tap-close.yml").read_text())
    assert_matches_about(hub, about)
    shared = ("namespace", "executable", "capabilities", "settings_group_validation", "settings",
              "select")
    assert {k: hub[k] for k in shared} == {k: tap[k] for k in shared}
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'name = "{hub["pip_url"]}"' in pyproject, "the Hub installs the PyPI package"
    assert tap["select"][0] == "*.*"
    assert set(tap["select"][1:]) == opt_in_properties(tmp_path), (
        "select must exclude exactly the fields the tap leaves out by default")
    jsonl = plugin(project, "loaders", "target-jsonl")
    postgres = plugin(project, "loaders", "target-postgres")
    assert (jsonl["variant"], jsonl["pip_url"]) == ("andyh1203", "target-jsonl")
    assert (postgres["variant"], postgres["pip_url"]) == ("meltanolabs",
                                                         "meltanolabs-target-postgres")
    # a namespace makes them custom plugins: Meltano needs no Hub (no network) to use them
    assert jsonl["namespace"] and postgres["namespace"]
    for loader in (jsonl, postgres):
        for setting in loader["settings"]:
            assert setting.get("label") and setting.get("description") and setting.get("kind")
    env = next(e for e in project["environments"] if e["name"] == "emulator")
    emu_tap = plugin(env["config"], "extractors", "tap-close")["config"]
    assert emu_tap["api_url"].startswith("http://127.0.0.1:")


def readme_yaml(section: str, end: str) -> dict[str, Any]:
    """The YAML example of a README section (`## <section>` up to `## <end>`)."""
    readme = (REPO / "README.md").read_text()
    text = readme[readme.index(f"## {section}"):readme.index(f"## {end}")]
    block = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert block, f"no YAML example in the README's {section} section"
    return dict(yaml.safe_load(block.group(1)))


@contextlib.contextmanager
def project_with(meltano: Meltano, change: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """The session project's meltano.yml changed (as the README says to) for one test."""
    path = meltano.project / "meltano.yml"
    original = path.read_text()
    spec = yaml.safe_load(original)
    change(spec)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        yield
    finally:
        path.write_text(original)


def add_stream_maps(spec: dict[str, Any]) -> None:
    """The README's "Stream maps" YAML, in the tap-close plugin's config."""
    example = plugin(readme_yaml("Stream maps", "Scaling out"), "extractors", "tap-close")
    plugin(spec, "extractors", "tap-close").setdefault("config", {}).update(example["config"])


# --- Meltano in its own venv, one project per session ---------------------------------------------


def _run(cmd: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, check=False, **kwargs
    )


def _install_meltano(venv: Path) -> Path:
    uv = Path(sys.executable).with_name("uv")
    uv_bin = str(uv) if uv.exists() else shutil.which("uv")
    python = venv / "bin" / "python"
    if uv_bin:
        steps = [
            [uv_bin, "venv", "--quiet", "--python", sys.executable, venv],
            [uv_bin, "pip", "install", "--quiet", "--python", python, MELTANO_REQUIREMENT],
        ]
    else:
        steps = [
            [sys.executable, "-m", "venv", venv],
            [python, "-m", "pip", "install", "--quiet", MELTANO_REQUIREMENT],
        ]
    for step in steps:
        proc = _run(step, timeout=600)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(map(str, step))}: {proc.stderr.strip()[-2000:]}")
    return venv / "bin" / "meltano"


@dataclass
class Meltano:
    bin: Path
    project: Path

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MELTANO_", "TAP_CLOSE_", "TARGET_JSONL_", "TARGET_POSTGRES_"))}
        env.update(
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
            MELTANO_CLI_DISABLE_VERSION_CHECK="true",
            MELTANO_CLI_LOG_FORMAT="uncolored",
            NO_COLOR="1",
        )
        return env

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run([self.bin, *args], cwd=self.project, env=env or self.base_env(),
                    timeout=timeout)


@pytest.fixture(scope="session")
def meltano(tmp_path_factory: pytest.TempPathFactory) -> Meltano:
    root = tmp_path_factory.mktemp("meltano")
    try:
        binary = _install_meltano(root / "venv")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"could not install {MELTANO_REQUIREMENT} (needs PyPI): {exc}")
    project = root / "project"
    project.mkdir()
    spec = load_meltano_yml()
    plugin(spec, "extractors", "tap-close")["pip_url"] = f"-e {REPO}"  # README: another project
    (project / "meltano.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    melt = Meltano(binary, project)
    proc = melt("install", timeout=900)  # the README's command: the tap and both loaders
    if proc.returncode:
        unavailable(f"`meltano install` failed (needs PyPI):\n{proc.stderr[-3000:]}")
    return melt


def pipeline_env(meltano: Meltano, tmp_path: Path, emu: CloseEmulator,
                 **extra: str) -> dict[str, str]:
    """Environment of one test's `meltano run`s: its own system DB (state), the emulator's URL."""
    env = meltano.base_env()
    env.update(
        MELTANO_DATABASE_URI=f"sqlite:///{tmp_path / 'meltano.db'}",
        TAP_CLOSE_API_URL=emu.api_url,  # overrides the `emulator` environment's fixed port
        TAP_CLOSE_OAUTH_TOKEN_URL=emu.token_url,
        **extra,
    )
    return env


def meltano_run(meltano: Meltano, target: str, env: dict[str, str],
                environment: str = "emulator") -> str:
    """The README's `meltano --environment=emulator run tap-close <target>`, as written."""
    proc = meltano(f"--environment={environment}", "run", "tap-close", target, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"meltano run failed ({proc.returncode}):\n{log[-6000:]}"
    assert "Traceback" not in log, log[-6000:]
    assert "ResourceWarning" not in log, "a connection was left open"
    return log


def stored_state(meltano: Meltano, env: dict[str, str], target: str,
                 environment: str = "emulator") -> dict[str, Any]:
    state_id = STATE_ID.format(environment=environment, target=target)
    proc = meltano(f"--environment={environment}", "state", "get", state_id, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bookmarks(state: dict[str, Any]) -> dict[str, Any]:
    return state.get("singer_state", {}).get("bookmarks", {})


@dataclass(frozen=True)
class Mutations:
    deleted_lead: str
    deleted_lead_contacts: set[str]
    deleted_lead_opps: set[str]
    updated_lead: str
    updated_contact: str
    updated_contact_lead: str
    deleted_contact: str
    deleted_opp: str
    updated_opp: str
    new_lead: str


def mutate(emu: CloseEmulator) -> Mutations:
    """Deletes, updates and an insert, on distinct leads."""
    contacts = emu.records("contacts")
    opps = emu.records("opportunities")
    by_lead: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for contact in contacts:
        by_lead[contact["lead_id"]].append(contact)
    opp_leads = {o["lead_id"] for o in opps}
    # a lead with contacts and opportunities, so the delete cascades into both streams
    with_both = sorted(lead for lead in by_lead if lead in opp_leads)
    assert len(with_both) >= 2, "the emulator data set has too few leads with contacts and opps"
    doomed, contact_lead = with_both[0], with_both[1]
    others = sorted(emu.truth("leads") - {doomed, contact_lead})
    deleted_contact_lead = next(lead for lead in others if len(by_lead.get(lead, [])) >= 2)
    deleted_contact = sorted(c["id"] for c in by_lead[deleted_contact_lead])[0]
    other_opps = sorted(o["id"] for o in opps if o["lead_id"] not in {doomed, contact_lead,
                                                                       deleted_contact_lead})
    assert len(other_opps) >= 2, "the emulator data set has too few opportunities"
    updated_lead = next(lead for lead in others if lead != deleted_contact_lead)
    updated_contact = by_lead[contact_lead][0]["id"]
    emu.delete_lead(doomed)
    emu.update_lead(updated_lead)
    emu.update_contact(updated_contact)
    emu.delete_contact(deleted_contact)
    emu.delete_opportunity(other_opps[0])
    emu.update_opportunity(other_opps[1])
    return Mutations(
        deleted_lead=doomed,
        deleted_lead_contacts={c["id"] for c in by_lead[doomed]},
        deleted_lead_opps={o["id"] for o in opps if o["lead_id"] == doomed},
        updated_lead=updated_lead,
        updated_contact=updated_contact,
        updated_contact_lead=contact_lead,
        deleted_contact=deleted_contact,
        deleted_opp=other_opps[0],
        updated_opp=other_opps[1],
        new_lead=emu.add_lead(),
    )


# --- target-jsonl ------------------------------------------------------------------------------


def read_jsonl(directory: Path, after: dict[str, list[dict[str, Any]]] | None = None
               ) -> dict[str, list[dict[str, Any]]]:
    """Records per stream file; with `after`, only the lines appended since that reading."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line]
        out[path.stem] = lines[len((after or {}).get(path.stem, [])):]
    return out


def live(records: list[dict[str, Any]], key: str = "id") -> set[str]:
    return {r[key] for r in records if not r.get("_sdc_deleted_at")}


def tombstones(records: list[dict[str, Any]], key: str = "id") -> set[str]:
    return {r[key] for r in records if r.get("_sdc_deleted_at")}


def truth_or_none(emu: CloseEmulator, stream: str) -> set[str] | None:
    """The emulator's ids of what the tap can see, None for a stream it does not model."""
    try:
        truth = emu.truth(stream)
    except KeyError:
        return None
    if stream == "send_as":  # Close shows only associations involving the caller
        me = emu.data.user_ids[0]
        truth = {r["id"] for r in emu.records(stream)
                 if me in (r["allowing_user_id"], r["allowed_user_id"])}
    return truth


def assert_emails_hashed(out: dict[str, list[dict[str, Any]]], emu: CloseEmulator,
                         deleted: bool = False) -> None:
    """The README's stream maps: contacts carry salted hashes instead of their addresses."""
    truth = {c["id"]: c for c in emu.records("contacts")}
    for contact in out.get("contacts", []):
        assert "emails" not in contact
        if contact["id"] not in truth:  # a tombstone: hashes of its last known addresses, if any
            assert deleted and contact.get("_sdc_deleted_at"), contact["id"]
            hashes = json.loads(contact["email_hashes"])
            assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), hashes
            continue
        expected = [hashlib.sha256((EMAIL_SALT + e["email"].strip().lower()).encode()).hexdigest()
                    for e in truth[contact["id"]]["emails"]]
        assert json.loads(contact["email_hashes"]) == expected
    for lead in out.get("leads", []):
        assert "primary_email" not in lead and "contacts" not in lead


def test_meltano_run_target_jsonl_is_incremental(meltano: Meltano, tmp_path: Path) -> None:
    """With the README's stream maps example in meltano.yml."""
    environment = "emulator"
    output = meltano.project / "output" / "emulator"  # the emulator environment's directory
    shutil.rmtree(output, ignore_errors=True)
    with CloseEmulator(seed=3, n_leads=20) as emu, project_with(meltano, add_stream_maps):
        env = pipeline_env(meltano, tmp_path, emu)
        # CLOSE_EMAIL_SALT unset: one line naming the setting, before any record or state
        proc = meltano(f"--environment={environment}", "run", "tap-close", "target-jsonl",
                       env=env)
        log = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "Traceback" not in log, log[-4000:]
        assert "stream_map_config does not set email_salt" in log, log[-4000:]
        assert not list(output.glob("*.jsonl")), "records were written"
        assert not emu.request_log, "the check comes before any request"

        env["CLOSE_EMAIL_SALT"] = EMAIL_SALT
        meltano_run(meltano, "target-jsonl", env, environment)
        first = read_jsonl(output)
        assert_emails_hashed(first, emu)
        compared = set()
        for stream, records in first.items():
            truth = truth_or_none(emu, stream)
            if truth is None or stream in NOT_COMPARED:
                continue
            key = key_of(stream)
            assert live(records, key) == truth, f"{stream}: first run differs from the truth"
            assert not tombstones(records, key), f"{stream}: tombstones on a first run"
            compared.add(stream)
        assert compared >= CORE_STREAMS, f"missing files: {CORE_STREAMS - compared}"
        state = bookmarks(stored_state(meltano, env, "target-jsonl", environment))
        assert state.get("leads", {}).get("replication_key_value"), state.get("leads")

        m = mutate(emu)
        meltano_run(meltano, "target-jsonl", env, environment)
        second = read_jsonl(output, after=first)  # do_timestamp_file: false appends
        assert_emails_hashed(second, emu, deleted=True)

    changed_leads = {m.updated_lead, m.updated_contact_lead, m.new_lead}
    leads = second.get("leads", [])
    contacts = second.get("contacts", [])
    opps = second.get("opportunities", [])
    # the deleted contact's lead changed too (its contacts list), so Close re-sends it
    contact_deleted_lead = next(c["lead_id"] for c in first["contacts"]
                                if c["id"] == m.deleted_contact)
    assert live(leads) == changed_leads | {contact_deleted_lead}
    assert tombstones(leads) == {m.deleted_lead}
    assert len(leads) < len(first["leads"]) / 2, "the second run was not incremental"
    touched = changed_leads | {contact_deleted_lead}
    assert live(contacts) == {c["id"] for c in emu.records("contacts") if c["lead_id"] in touched}
    assert tombstones(contacts) == m.deleted_lead_contacts | {m.deleted_contact}
    new_lead_opps = {o["id"] for o in emu.records("opportunities") if o["lead_id"] == m.new_lead}
    assert live(opps) == {m.updated_opp} | new_lead_opps
    assert tombstones(opps) == m.deleted_lead_opps | {m.deleted_opp}
    for records in second.values():
        for record in records:
            if record.get("_sdc_deleted_at"):
                assert re.match(r"\d{4}-\d\d-\d\dT", record["_sdc_deleted_at"]), record
    # both runs together are the truth, for every stream
    for stream in compared:
        key = key_of(stream)
        recs = first.get(stream, []) + second.get(stream, [])
        final = {r[key]: r for r in recs}  # later records win, as in an upserting target
        assert live(list(final.values()), key) == truth_or_none(emu, stream), stream


# --- target-postgres ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    with ExitStack() as stack:
        try:
            server = stack.enter_context(postgres_server())
        except PgUnavailable as exc:
            unavailable(f"no PostgreSQL server: {exc}")
        yield server


SCHEMA = "close_emulator"  # the emulator environment's default_target_schema


def qualified(name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


def table_counts(pg: PgServer, db: str) -> dict[str, tuple[int, int, int]]:
    """table -> (rows, distinct keys, distinct tombstoned keys)."""
    tables = [t for (t,) in pg.query(
        db, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        (SCHEMA,))]
    out = {}
    for name in tables:
        key = sql.Identifier(key_of(name))
        ((rows, distinct, dead),) = pg.query(db, sql.SQL(
            "SELECT count(*), count(DISTINCT {key}), "
            "count(DISTINCT {key}) FILTER (WHERE _sdc_deleted_at IS NOT NULL) FROM {table}",
        ).format(key=key, table=qualified(name)))
        out[name] = (rows, distinct, dead)
    return out


def keys(pg: PgServer, db: str, name: str, *, deleted: bool) -> set[str]:
    query = sql.SQL("SELECT {key} FROM {table} WHERE _sdc_deleted_at IS {cond}").format(
        key=sql.Identifier(key_of(name)), table=qualified(name),
        cond=sql.SQL("NOT NULL" if deleted else "NULL"))
    return {k for (k,) in pg.query(db, query)}


def column_types(pg: PgServer, db: str, table: str) -> dict[str, tuple[str, str]]:
    return {name: (data_type, udt) for name, data_type, udt in pg.query(db, (
        "SELECT column_name, data_type, udt_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s"), (SCHEMA, table))}


def expected_pg_types(field_def: dict[str, Any]) -> set[str]:
    """udt_name(s) a Close custom field may land as in target-postgres."""
    if field_def.get("accepts_multiple_values"):
        return {"_text", "_varchar", "jsonb", "json"}
    return {
        "number": {"numeric", "float8", "int8"},
        "date": {"date"},
        "datetime": {"timestamp", "timestamptz"},
        "hidden": {"text", "varchar"},  # JSON text
    }.get(field_def["type"], {"text", "varchar"})


def postgres_overrides(pg: PgServer) -> dict[str, str]:
    """TARGET_POSTGRES_* for what differs from the emulator environment's server (none for
    the machine's trust-auth server on 127.0.0.1:5432)."""
    env = next(e for e in load_meltano_yml()["environments"] if e["name"] == "emulator")
    shipped = plugin(env["config"], "loaders", "target-postgres")["config"]
    actual = {"host": pg.host, "port": pg.port, "user": pg.user, "password": pg.password}
    return {f"TARGET_POSTGRES_{name.upper()}": str(value) for name, value in actual.items()
            if str(value) != str(shipped.get(name))}


def test_meltano_run_target_postgres(meltano: Meltano, pg_server: PgServer,
                                     tmp_path: Path) -> None:
    with pg_server.temporary_database() as db, CloseEmulator(seed=5, n_leads=20) as emu:
        # the emulator environment as shipped (127.0.0.1:5432, user postgres, trust auth),
        # in this test's own database; a private test server's address overrides it too
        env = pipeline_env(meltano, tmp_path, emu, TARGET_POSTGRES_DATABASE=db,
                           **postgres_overrides(pg_server))
        meltano_run(meltano, "target-postgres", env)
        counts = table_counts(pg_server, db)
        compared = set()
        for table, (rows, distinct, dead) in counts.items():
            truth = truth_or_none(emu, table)
            if truth is None or table in NOT_COMPARED:
                continue
            assert (rows, distinct, dead) == (len(truth), len(truth), 0), table
            compared.add(table)
        assert compared >= CORE_STREAMS, f"missing tables: {CORE_STREAMS - compared}"

        # typed custom field columns
        for obj, table in (("lead", "leads"), ("contact", "contacts"),
                           ("opportunity", "opportunities")):
            columns = column_types(pg_server, db, table)
            for field_def in emu.custom_fields(obj):
                column = f"custom_{field_def['id']}"
                assert column in columns, f"{table}.{column} ({field_def['name']}) missing"
                assert columns[column][1] in expected_pg_types(field_def), (
                    f"{table}.{column}: {field_def['type']} landed as {columns[column]}")
        lead_fields = emu.custom_fields("lead")
        kinds = {(f["type"], bool(f.get("accepts_multiple_values"))) for f in lead_fields}
        assert {("number", False), ("date", False), ("datetime", False)} <= kinds
        assert any(multi for _, multi in kinds), "no multi-value custom field to check"
        number = next(f for f in lead_fields if f["type"] == "number")
        truth_numbers = {lead["id"]: lead.get(f"custom.{number['id']}")
                         for lead in emu.records("leads")}
        stored = dict(pg_server.query(db, sql.SQL("SELECT id, {} FROM {}").format(
            sql.Identifier(f"custom_{number['id']}"), qualified("leads"))))
        assert {k: (None if v is None else float(v)) for k, v in stored.items()} == {
            k: (None if v is None else float(v)) for k, v in truth_numbers.items()}

        m = mutate(emu)
        meltano_run(meltano, "target-postgres", env)
        counts = table_counts(pg_server, db)
        for table in sorted(compared):
            truth = truth_or_none(emu, table)
            assert keys(pg_server, db, table, deleted=False) == truth, table
            rows, distinct, dead = counts[table]
            assert rows == distinct, f"{table}: duplicate rows (upsert by key expected)"
            assert distinct == len(truth) + dead, table
        assert keys(pg_server, db, "leads", deleted=True) == {m.deleted_lead}
        assert keys(pg_server, db, "contacts", deleted=True) == (
            m.deleted_lead_contacts | {m.deleted_contact})
        assert keys(pg_server, db, "opportunities", deleted=True) == (
            m.deleted_lead_opps | {m.deleted_opp})
        ((deleted_at,),) = pg_server.query(db, sql.SQL(
            "SELECT _sdc_deleted_at FROM {} WHERE id = %s").format(qualified("leads")),
            (m.deleted_lead,))
        assert deleted_at is not None
        assert m.new_lead in keys(pg_server, db, "leads", deleted=False)
        state = bookmarks(stored_state(meltano, env, "target-postgres"))
        assert state.get("leads", {}).get("replication_key_value")


# --- the README's Meltano commands for a Close account (dev environment) --------------------------


def add_scaling_out(spec: dict[str, Any]) -> None:
    """The README's "Scaling out" YAML: inherited extractors, jobs and schedules."""
    example = readme_yaml("Scaling out", "Streams")
    spec["plugins"]["extractors"] += example["plugins"]["extractors"]
    spec["jobs"], spec["schedules"] = example["jobs"], example["schedules"]


def test_meltano_dev_commands(meltano: Meltano, tmp_path: Path) -> None:
    """The README's Meltano commands for a Close account (dev environment), in its order and as
    written (Close's URL overridden by TAP_CLOSE_API_URL); then, in the same project with the
    key `meltano config set` left in .env, the emulator environment's run (it must not take
    that key); the scaling-out groups' `meltano select --list`."""
    project = meltano.project
    output = project / "output"
    shutil.rmtree(output, ignore_errors=True)
    dev_key = "api_dev_account_key"  # not the emulator environment's key
    with CloseEmulator(seed=9, n_leads=15, api_key=dev_key) as emu:
        env = pipeline_env(meltano, tmp_path, emu, CLOSE_API_KEY=dev_key,
                           PATH=f"{meltano.bin.parent}:{os.environ['PATH']}")

        def shell(command: str) -> str:
            proc = _run(["bash", "-c", command], cwd=project, env=env, timeout=300)
            log = proc.stdout + proc.stderr
            assert proc.returncode == 0 and "Traceback" not in log, f"{command}:\n{log[-4000:]}"
            return proc.stdout

        try:
            shell("meltano config set tap-close api_key ...")  # meltano.yml's comment
            shell('meltano config set tap-close api_key "$CLOSE_API_KEY"')
            assert f"TAP_CLOSE_API_KEY='{dev_key}'" in (project / ".env").read_text()
            assert dev_key not in (project / "meltano.yml").read_text()
            assert "Plugin configuration is valid" in shell("meltano config test tap-close")
            listed = shell("meltano select tap-close --list --all")
            for pattern in plugin(load_meltano_yml(), "extractors", "tap-close")["select"][1:]:
                assert re.search(rf"\[excluded\s*\]\s+{re.escape(pattern[1:])}\n", listed), (
                    pattern, listed[-3000:])
            assert re.search(r"\[selected\s*\]\s+leads\.display_name\n", listed)
            shell("meltano run tap-close target-jsonl")
            leads = read_jsonl(output)["leads"]
            assert live(leads) == emu.truth("leads")
            assert not any("primary_email" in lead for lead in leads), "a slow field was read"
            fields = [e["params"].get("_fields", "") for e in emu.request_log
                      if e["path"] == "/api/v1/lead/"]
            assert fields and not any("primary_email" in f for f in fields), fields[:3]
            state = json.loads(shell("meltano state get dev:tap-close-to-target-jsonl")
                               .strip().splitlines()[-1])
            assert bookmarks(state)["leads"]["replication_key_value"]

            # an SDK setting, typed (README "SDK settings")
            shell("meltano config set tap-close flattening_enabled true")
            shell("meltano config set tap-close flattening_max_depth 1")
            printed = json.loads(shell("meltano config print tap-close --format=json"))
            assert (printed["flattening_enabled"], printed["flattening_max_depth"]) == (True, 1)
            shell("meltano config unset tap-close flattening_enabled")
            shell("meltano config unset tap-close flattening_max_depth")

            with project_with(meltano, add_scaling_out):
                listed = shell("meltano select tap-close--crm --list")  # Meltano reads the jobs too
            selected = set(re.findall(r"\[selected\s*\]\s+(\w+)\.", listed))
            assert selected == {"leads", "contacts", "opportunities"}, listed[-2000:]
            assert not re.search(r"\[selected\s*\]\s+leads\.primary_email\n", listed)

            shell("meltano install tap-close")  # README: another project, after the copy
        finally:
            secrets_env = (project / ".env").read_text()
    # the emulator environment in the same project, .env still holding the dev key
    try:
        with CloseEmulator(seed=10, n_leads=5) as local:
            local_env = pipeline_env(meltano, tmp_path, local)
            emulator_output = project / "output" / "emulator"
            shutil.rmtree(emulator_output, ignore_errors=True)
            meltano_run(meltano, "target-jsonl", local_env)
            assert live(read_jsonl(emulator_output)["leads"]) == local.truth("leads")
    finally:
        (project / ".env").unlink(missing_ok=True)
    assert dev_key in secrets_env
