"""Progress on long commands: plain lines when not on a terminal, counts read from the run's own event log."""

from __future__ import annotations

import io
import time

import dagster as dg
from dagster._core.utils import make_new_run_id
from rich.console import Console

from pipelines.progress import Reporter


@dg.asset
def charts(context) -> None:
    for n in (1, 2):
        context.log.info(f"market charts: {n}/2 coins (coin-{n})")
        time.sleep(0.4)


def test_plain_lines_with_counts_from_the_event_log() -> None:
    out = io.StringIO()
    run_id = make_new_run_id()
    with dg.DagsterInstance.ephemeral() as instance:
        with Reporter(console=Console(file=out, width=200), live=False) as rep:
            rep.stage("daily pulls 2025-11-10..2025-11-23 ...")
            with rep.watch(instance, run_id, interval=0.1):
                job = dg.Definitions(
                    assets=[charts], jobs=[dg.define_asset_job("j", [charts])]
                ).resolve_job_def("j")
                assert job.execute_in_process(instance=instance, run_id=run_id).success
                time.sleep(0.3)
    text = out.getvalue()
    assert "] daily pulls 2025-11-10..2025-11-23 ..." in text
    assert "charts: market charts 2/2" in text
    assert "\x1b[" not in text  # no terminal control codes in a pipe


def test_live_mode_is_transient_and_quiet_about_steps() -> None:
    out = io.StringIO()
    with Reporter(console=Console(file=out, width=120, force_terminal=True), live=True) as rep:
        rep.stage("week 2025-11-17 ...")
        rep.detail("weekly_report")
        rep.detail("raw_coingecko_market_charts", ("market charts", 3, 10))
    assert "week 2025-11-17 ..." in out.getvalue()


def test_an_unreadable_event_log_is_said_once_and_followed_again() -> None:
    """The display follows the run's events: when they cannot be read it says so once (not a line a second, and
    not nothing), and goes on following them once they can."""

    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        def get_records_for_run(self, run_id, cursor=None, limit=1000):
            self.calls += 1
            if self.calls <= 3:
                raise OSError("database is locked")
            return dg.EventRecordsResult(records=[], cursor="c", has_more=False)

    out, flaky = io.StringIO(), Flaky()
    with Reporter(console=Console(file=out, width=200), live=False) as rep:
        with rep.watch(flaky, "run", interval=0.02):
            deadline = time.monotonic() + 5
            while flaky.calls < 5 and time.monotonic() < deadline:
                time.sleep(0.02)
    assert flaky.calls >= 5
    assert out.getvalue().count("the run's events cannot be read (OSError: database is locked)") == 1
