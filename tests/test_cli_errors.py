"""Issue 15, as a new user meets the command line: each bad input ends in one clear line, the right exit code
(2 for usage and configuration, 1 for failures), no stack trace, within seconds."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from pipelines import settings
from pipelines.cli import main
from pipelines.settings import SettingsError

API_VARS = [*settings.SPECS]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No project variable set; a writable warehouse and DAGSTER_HOME under tmp."""
    for name in API_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAREHOUSE_DIR", str(tmp_path / "wh"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return tmp_path


def _run(args: list[str], env: dict[str, str] | None = None):
    t0 = time.monotonic()
    result = CliRunner().invoke(main, args, env=env)
    result.seconds = time.monotonic() - t0
    return result


def _one_clear_line(result, code: int, *needles: str, within: float = 10) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    assert result.seconds < within, result.seconds
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_week_without_zero_padding_is_read_as_that_monday(clean_env: Path) -> None:
    # accepted as 2025-11-03 (the --first-day check after it shows the week was read, without running anything)
    result = _run(["report", "--week", "2025-11-3", "--first-day", "2025-12-01"])
    _one_clear_line(result, 2, "after the week's Monday, 2025-11-03")
    result = _run(["report", "--week", "2025-11-4"])
    _one_clear_line(result, 2, "2025-11-04 is a Tuesday")


def test_first_day_garbage(clean_env: Path) -> None:
    _one_clear_line(_run(["report", "--first-day", "garbage"]), 2, "--first-day", "'garbage' is not a date")
    _one_clear_line(_run(["backfill", "--first-day", "garbage"]), 2, "--first-day", "'garbage' is not a date")


def test_emulator_port_out_of_range(clean_env: Path) -> None:
    _one_clear_line(_run(["emulator", "--port", "99999"]), 2, "--port", "0<=x<=65535")
    _one_clear_line(_run(["dev", "--port", "0"]), 2, "--port")


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("COINGECKO_TIMEOUT_SECONDS", "abc", "seconds > 0"),
        ("COINGECKO_CALLS_PER_MINUTE", "abc", "whole number >= 0"),
        ("CRYPTO_WEEKLY_NOW", "garbage", "ISO-8601"),
        ("COINGECKO_API_PLAN", "enterprise", "demo or pro"),
        ("OKX_CALLS_PER_MINUTE", "-5", "whole number >= 0"),
        ("COINGECKO_TOP_N", "0", "whole number >= 1"),
        ("BYBIT_MAX_ATTEMPTS", "0", "whole number >= 1"),
        ("FRED_BASE_URL", "fred.stlouisfed.org", "http:// or https://"),
        ("CRYPTO_WEEKLY_VENUES", "binance,kraken", "kraken"),
        ("CRYPTO_WEEKLY_PERP_TOP_N", "many", "whole number >= 1"),
        ("CRYPTO_WEEKLY_AUTOMATION", "paused", "running (the default) or stopped"),
    ],
)
@pytest.mark.parametrize("command", ["report", "demo", "backfill"])
def test_bad_environment_is_refused_before_any_work(
    clean_env: Path, command: str, name: str, value: str, allowed: str
) -> None:
    line = _one_clear_line(_run([command], env={name: value}), 2, name, repr(value), allowed)
    assert line.count(name) == 1  # once, not once per resource
    assert not (clean_env / "dagster_home").exists()  # nothing started


def test_bad_environment_fails_the_definitions_with_the_same_line(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.definitions import make_definitions

    monkeypatch.setenv("COINGECKO_TIMEOUT_SECONDS", "abc")
    with pytest.raises(SettingsError, match="COINGECKO_TIMEOUT_SECONDS='abc'"):
        make_definitions()


def test_plan_is_case_insensitive(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.resources import build_resources

    monkeypatch.setenv("COINGECKO_API_PLAN", "Pro")
    monkeypatch.setenv("COINGECKO_API_KEY", "k")
    cg = build_resources()["coingecko"]
    assert cg.plan == "pro"
    with dg.build_resources({"coingecko": cg}) as res:
        assert "x-cg-pro-api-key" in res.coingecko.client().http.client.headers


def test_top_n_zero_never_stores_an_empty_snapshot(tmp_path: Path) -> None:
    from pipelines.pulls.coingecko import pull_registry
    from pipelines.warehouse import Warehouse

    with pytest.raises(ValueError, match="top_n must be >= 1"):
        pull_registry(None, Warehouse(tmp_path), top_n=0)  # type: ignore[arg-type]
    assert not any(tmp_path.rglob("_complete*"))


def test_unwritable_warehouse_is_refused_up_front(clean_env: Path) -> None:
    blocker = clean_env / "a-file"
    blocker.write_text("not a directory")
    result = _run(["report"], env={"WAREHOUSE_DIR": str(blocker / "wh")})
    _one_clear_line(result, 2, "WAREHOUSE_DIR=", "is not writable", "set WAREHOUSE_DIR to a directory")


def test_warehouse_dir_has_one_meaning_whatever_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert settings.warehouse_root({}) == settings.PROJECT_ROOT / "warehouse"
    assert (
        settings.warehouse_root({"WAREHOUSE_DIR": "rel"}) == tmp_path / "rel"
    )  # relative: from where it is run


def test_already_reported_means_in_this_warehouse(tmp_path: Path) -> None:
    from pipelines.runner import reported

    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    week = "2025-11-17"
    (elsewhere / "reports" / week).mkdir(parents=True)
    for name in ("report.md", "report.html", "manifest.json"):
        (elsewhere / "reports" / week / name).write_text("x")
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "weekly_report",
                partition=week,
                metadata={"markdown_path": str(elsewhere / "reports" / week / "report.md")},
            )
        )
        assert reported(week, instance, elsewhere)
        assert not reported(week, instance, here)  # a backfill pointed here computes the week


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.slow
def test_dead_base_url_fails_within_seconds(clean_env: Path) -> None:
    """The one test here that starts a run: every source at a closed port on 127.0.0.1."""
    dead = f"http://127.0.0.1:{_closed_port()}"
    env = {name: dead for name in settings.BASE_URLS}
    env.update({f"{api}_CALLS_PER_MINUTE": "0" for api in settings.APIS})
    env["CRYPTO_WEEKLY_NOW"] = "2025-12-02T06:00:00+00:00"
    t0 = time.monotonic()
    result = CliRunner().invoke(
        main, ["report", "--week", "2025-11-17", "--first-day", "2025-11-12"], env=env
    )
    result.seconds = time.monotonic() - t0
    line = _one_clear_line(
        result, 1, "unreachable", "fix: check COINGECKO_BASE_URL,", "and the network", within=60
    )
    assert len(line) < 600, line
    assert "Full log: " in result.output
    # issue 15's first row: progress first (not six silent minutes), then a few lines, not ~100 of Dagster traces
    assert "] daily pulls 2025-11-12..2025-11-23" in result.output.split("Error:")[0]
    assert len(result.output.splitlines()) < 12, result.output
    log = Path(result.output.split("Full log: ")[1].split(" ")[0].strip())
    assert log.is_relative_to(clean_env / "wh" / "logs") and "Traceback" in log.read_text()
    assert result.seconds < 60  # an hour before; ~12 s on an idle machine


def test_emulator_port_in_use(clean_env: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = _run(["emulator", "--port", str(port)])
    _one_clear_line(result, 1, "Address already in use", "choose another with --port")
    assert "Full log: " + str(clean_env / "wh" / "logs") in result.output


def test_verbose_prints_the_stack_trace(clean_env: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        result = _run(["-v", "emulator", "--port", str(s.getsockname()[1])])
    assert result.exit_code == 1 and "Traceback" in result.output


def test_a_new_dagster_home_gets_the_queue_and_pools_and_an_old_one_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new DAGSTER_HOME gets the project's dagster.yaml (the run queue, run limits and pools); one without them is
    kept as the user wrote it, with one warning line naming what is missing."""
    import yaml

    from pipelines import cli

    new = tmp_path / "new_home"
    monkeypatch.setenv("DAGSTER_HOME", str(new))
    cli._ensure_dagster_home()
    cfg = yaml.safe_load((new / "dagster.yaml").read_text())
    assert cfg["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert cfg["concurrency"]["pools"]["default_limit"] == 1
    assert capsys.readouterr().err == ""

    old = tmp_path / "old_home"
    old.mkdir()
    (old / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(old))
    cli._ensure_dagster_home()
    assert (old / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run_coordinator, concurrency" in err


@pytest.mark.parametrize(
    ("value", "status"), [(None, "RUNNING"), ("stopped", "STOPPED"), (" Running ", "RUNNING")]
)
def test_automation_setting_decides_how_schedules_and_sensors_start(value: str | None, status: str) -> None:
    """Read when the code loads (a daemon's code server): every schedule and sensor starts as the setting says."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CRYPTO_WEEKLY_AUTOMATION"}
    if value is not None:
        env["CRYPTO_WEEKLY_AUTOMATION"] = value
    code = (
        "from pipelines.definitions import defs\n"
        "for s in [*defs.schedules, *defs.sensors]: print(s.name, s.default_status.value)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    lines = out.strip().splitlines()
    keeper = "pool_keeper_sensor RUNNING"  # starts no run: on whatever the setting says
    assert keeper in lines, out
    automation = [line for line in lines if line != keeper]
    assert len(automation) == 4, out  # the daily and weekly schedules, the freshness and catch-up sensors
    assert all(line.endswith(f" {status}") for line in automation), out


def test_automation_setting_refuses_other_values() -> None:
    assert settings.automation_running({}) and not settings.automation_running(
        {"CRYPTO_WEEKLY_AUTOMATION": "stopped"}
    )
    with pytest.raises(SettingsError, match="CRYPTO_WEEKLY_AUTOMATION='off' is not valid: expected running"):
        settings.automation_running({"CRYPTO_WEEKLY_AUTOMATION": "off"})
