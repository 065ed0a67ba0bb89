"""Run what a week needs, in process: the daily pulls for its history as one run, then the weekly job.

Used by ``make demo``, the ``crypto-weekly`` command and the end-to-end tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from pipelines.partitions import DAILY_START, week_close_days

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Clients whose pacing is turned off against the (loopback) emulator.
PACED_APIS = ("COINGECKO", "BINANCE", "BYBIT", "OKX", "FRED")


@dataclass
class WeekRun:
    week: str
    report_dir: Path
    daily_run_id: str
    weekly_run_id: str

    @property
    def markdown(self) -> Path:
        return self.report_dir / "report.md"

    @property
    def html(self) -> Path:
        return self.report_dir / "report.html"


@contextmanager
def emulated_sources(seed: int | None = None, now: datetime | None = None) -> Iterator[dict[str, str]]:
    """Start the market emulator and point every client at it (environment variables) for the duration."""
    from pipelines.emulator.market import DEFAULT_SEED  # noqa: PLC0415
    from pipelines.emulator.server import MarketEmulator  # noqa: PLC0415

    emu = MarketEmulator(seed=seed if seed is not None else DEFAULT_SEED, now=now)
    with emu:
        # The pipeline's clock is the emulator's: same seed and clock, same lake and report; no pacing.
        env = {**emu.base_urls(), **{f"{api}_CALLS_PER_MINUTE": "0" for api in PACED_APIS},
               "CRYPTO_WEEKLY_NOW": emu.now.isoformat()}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class RunFailed(RuntimeError):
    pass


def _messages(error: object) -> str:
    """An error and its causes, innermost last: Dagster wraps an asset's own exception in a step error."""
    parts = []
    while error is not None and len(parts) < 5:
        text = str(getattr(error, "message", "")).strip()
        if text and not text.startswith("dagster._core.errors.DagsterExecutionStepExecutionError"):
            parts.append(text)
        error = getattr(error, "cause", None)
    return " <- ".join(parts)


def _check(result: dg.ExecuteInProcessResult, what: str) -> None:
    if not result.success:
        errors = [
            _messages(e.event_specific_data.error)  # type: ignore[union-attr]
            for e in result.all_events
            if e.is_failure and getattr(e.event_specific_data, "error", None)
        ]
        raise RunFailed(f"{what} failed: " + (" | ".join(e for e in errors if e) or "see the run's logs"))


def _run_config(log_level: str) -> dict:
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def run_week(
    week: str, instance: dg.DagsterInstance, first_day: str = DAILY_START, log_level: str = "WARNING"
) -> WeekRun:
    """Materialize everything ``week`` needs: days ``first_day``..the week's last day, then the week."""
    from pipelines.definitions import make_definitions  # noqa: PLC0415 (resources read the env at build time)

    defs = make_definitions()
    _, close_day = week_close_days(week)
    daily = defs.resolve_job_def("daily_job").execute_in_process(
        instance=instance,
        tags={RANGE_START_TAG: first_day, RANGE_END_TAG: close_day.isoformat(), "crypto-weekly/trigger": "runner"},
        raise_on_error=False,
        run_config=_run_config(log_level),
    )
    _check(daily, f"daily pulls {first_day}..{close_day}")
    weekly = defs.resolve_job_def("weekly_job").execute_in_process(
        instance=instance, partition_key=week, tags={"crypto-weekly/trigger": "runner"}, raise_on_error=False,
        run_config=_run_config(log_level),
    )
    _check(weekly, f"week {week}")
    mats = [m for m in weekly.get_asset_materialization_events() if m.asset_key == dg.AssetKey("weekly_report")]
    if not mats:
        raise RunFailed(f"week {week}: the run succeeded but did not materialize weekly_report")
    report_dir = Path(mats[-1].materialization.metadata["markdown_path"].value).parent  # type: ignore[union-attr]
    return WeekRun(week=week, report_dir=report_dir, daily_run_id=daily.run_id, weekly_run_id=weekly.run_id)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
