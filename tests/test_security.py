"""Security: secrets stay in the environment, SQL is parameterized, API strings never become paths or markup,
and everything listens on loopback only."""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from pipelines.emulator.server import Fault, MarketEmulator
from pipelines.runner import RunFailed, run_week
from tests.conftest import REPO, TEST_NOW, point_env_at, run_instance

WEEK = "2025-11-17"


@pytest.fixture
def env(emulator: MarketEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    wh = tmp_path / "warehouse"
    point_env_at(monkeypatch, emulator, wh)
    monkeypatch.setenv("COINGECKO_TOP_N", "120")
    monkeypatch.setenv("COINGECKO_MAX_ATTEMPTS", "1")
    emulator.clear_faults()
    yield wh
    emulator.clear_faults()


# ---- secrets --------------------------------------------------------------------------------------------------
def _files_containing(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_api_key_never_reaches_lake_logs_metadata_or_reports(
    env: Path, emulator: MarketEmulator, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture, caplog
) -> None:
    secret = f"CG-{uuid.uuid4().hex}"
    monkeypatch.setenv("COINGECKO_API_KEY", secret)
    from pipelines.definitions import make_definitions

    with dg.build_resources({"coingecko": make_definitions().resources["coingecko"]}) as res:
        with (
            res.coingecko.client() as client
        ):  # the key is really in use: sent in the header of the emulator's plan (pro)
            assert client.http.client.headers["x-cg-pro-api-key"] == secret
    # one coin fails for good, so the error path (messages, failure metadata) is exercised too
    emulator.inject(Fault(api="coingecko", path="/coins/solana/market_chart", kind="500", times=None))
    with run_instance() as instance:
        with pytest.raises(RunFailed) as err:
            run_week(WEEK, instance, first_day="2025-11-16")
        emulator.clear_faults()
        run_week(WEEK, instance, first_day="2025-11-16")
        runs = instance.get_runs()
        assert len(runs) >= 3
        events = [str(e) for r in runs for e in instance.all_logs(r.run_id)]
        records = [str(r.run_config) + str(r.tags) for r in runs]
        stored = _files_containing(Path(instance.root_directory), secret.encode())
    assert secret not in str(err.value)
    assert events and not [e for e in events if secret in e]
    assert not [r for r in records if secret in r]
    assert not stored, stored  # the instance's event log and run storage on disk
    assert not _files_containing(env, secret.encode())  # raw, .meta.json, lake, catalog, reports
    out, errs = capfd.readouterr()
    assert secret not in out + errs + caplog.text
    assert (env / "reports" / WEEK / "report.md").exists()


# ---- SQL --------------------------------------------------------------------------------------------------------
SQL_WORDS = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", "CREATE ", "COMMENT ON", " WHERE ", "DROP ")
# Interpolations allowed in SQL text: identifiers and fragments from the code, never values from an API.
ALLOWED = {
    "table.name",
    "glob",
    "ptype",
    "table.partition_by",
    "comment",
    "where",
    # identifiers checked against the schema registry before use (pipelines/narrative/claims.py)
    "name",
    "col",
    "w_sql",
    "op",
    # a column list written in the code (assets/weekly/shape.py)
    "columns",
}
# Table-name constants from the schema registry (COIN_DAILY.name, FUNDING_RATES, ...) are identifiers too.
CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*(\.name)?$")


def sql_interpolations(source: str) -> list[str]:
    """Every value interpolated into SQL text (f-string, % or .format) that is not in ALLOWED."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            if any(w in text.upper() for w in SQL_WORDS):
                for v in node.values:
                    if (
                        isinstance(v, ast.FormattedValue)
                        and ast.unparse(v.value) not in ALLOWED
                        and not CONSTANT.match(ast.unparse(v.value))
                    ):
                        bad.append(f"line {node.lineno}: {{{ast.unparse(v.value)}}} in {text[:60]!r}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
            for side in (node.left, node.right):
                if (
                    isinstance(side, ast.Constant)
                    and isinstance(side.value, str)
                    and any(w in side.value.upper() for w in SQL_WORDS)
                ):
                    bad.append(f"line {node.lineno}: SQL built with {type(node.op).__name__}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant)
            and isinstance(node.func.value.value, str)
            and any(w in node.func.value.value.upper() for w in SQL_WORDS)
        ):
            bad.append(f"line {node.lineno}: SQL built with .format")
    return bad


def test_the_sql_checker_catches_interpolated_values() -> None:
    assert sql_interpolations("con.execute(f\"SELECT * FROM coin_daily WHERE coin_id = '{coin_id}'\")")
    assert sql_interpolations("con.execute(\"SELECT * FROM t WHERE id = '%s'\" % coin)")
    assert sql_interpolations("con.execute(\"DELETE FROM t WHERE id = '{}'\".format(coin))")
    assert not sql_interpolations("con.execute('SELECT * FROM t WHERE id = ?', [coin])")


def test_sql_in_pipelines_and_assets_is_parameterized() -> None:
    files = [
        p for d in ("pipelines", "assets") for p in (REPO / d).rglob("*.py") if "emulator" not in p.parts
    ]
    assert len(files) > 20
    found = {str(p.relative_to(REPO)): bad for p in files if (bad := sql_interpolations(p.read_text()))}
    assert not found, found


# ---- paths and markup from API strings --------------------------------------------------------------------------
EVIL_IDS = ["../../x", "..", "a/b", "/etc/passwd", ".hidden", "x\x00y"]


def test_hostile_coin_ids_never_become_paths(env: Path, emulator: MarketEmulator, tmp_path: Path) -> None:
    def add_evil(rows: list) -> list:
        evil = [{**rows[0], "id": cid, "symbol": "../evil", "market_cap_rank": 2} for cid in EVIL_IDS]
        return rows[:1] + evil + rows[1:]

    emulator.inject(
        Fault(api="coingecko", path="^/coins/markets$", kind="drift", times=None, mutate=add_evil)
    )
    n0 = len(emulator.requests)
    with run_instance() as instance:
        run = run_week(WEEK, instance, first_day="2025-11-16")  # dropped visibly, the rest goes on
        meta = instance.get_latest_materialization_event(
            dg.AssetKey("coin_registry")
        ).asset_materialization.metadata
    assert sorted(meta["rejected_coin_ids"].value) == sorted(EVIL_IDS)
    assert run.markdown.exists()
    asked = [p for _, p, _ in emulator.requests[n0:]]
    assert not [p for p in asked if ".." in p or "/etc/" in p or ".hidden" in p or "a/b" in p]
    outside = sorted(p.name for p in tmp_path.iterdir())
    assert outside == ["warehouse"], outside  # nothing written beside the warehouse
    coins = {p.name for p in (env / "raw/coingecko/market_chart_range").iterdir()}
    assert all(c.startswith("coin=") and "/" not in c and ".." not in c for c in coins)


def test_hostile_coin_names_are_escaped_end_to_end(env: Path, emulator: MarketEmulator) -> None:
    def hostile(rows: list) -> list:
        return [
            {
                **r,
                "name": f"<script>alert('{r['id']}')</script>\"><img src=x onerror=alert(1)> O'Neil'); DROP TABLE x;--",
                # the largest coins keep their tickers: the perpetuals are matched on them
                "symbol": r["symbol"] if (r.get("market_cap_rank") or 999) <= 60 else "<b>" + r["symbol"],
            }
            for r in rows
        ]

    emulator.inject(Fault(api="coingecko", path="^/coins/markets$", kind="drift", times=None, mutate=hostile))
    with run_instance() as instance:
        run = run_week(WEEK, instance, first_day="2025-11-16")
    html, md = run.html.read_text(), run.markdown.read_text()
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=alert(1)&gt;" in html  # shown, escaped
    assert "<script" not in html and "<img" not in html and "<b>" not in html.lower()
    # Markdown: shown as text (each "<" backslash-escaped), never a raw tag
    assert "\\<script\\>" in md and not re.search(r"(?<!\\)<(script|img|b\b)", md)


# ---- listening on loopback --------------------------------------------------------------------------------------
def test_dev_binds_the_webserver_to_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.cli as cli

    seen: list[list[str]] = []

    class FakeProc:
        def __init__(self, cmd, **kw):
            seen.append(cmd)

        def wait(self, timeout=None):
            return 0

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cli.subprocess, "Popen", FakeProc)
    result = CliRunner().invoke(cli.main, ["dev", "--real", "--port", "3999"])
    assert result.exit_code == 0, result.output
    cmd = seen[0]
    assert cmd[cmd.index("-h") + 1] == "127.0.0.1" and "0.0.0.0" not in cmd


def test_emulator_binds_loopback_by_default() -> None:
    with MarketEmulator(now=TEST_NOW) as emu:
        assert emu._server.server_address[0] == "127.0.0.1"
        assert emu.url.startswith("http://127.0.0.1:")
    import pipelines.cli as cli

    host = next(p for p in cli.emulator.params if p.name == "host")
    assert host.default == "127.0.0.1"
