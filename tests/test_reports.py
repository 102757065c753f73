"""`runpod-watchdog report`: a simulated month's report checked against the simulator's ground truth."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from sim_harness.wiring import sim_config
from tests.reports.sim_month import (
    SAVED_USD,
    START,
    UNBILLED_HOURS,
    DaemonMonth,
    SteadyMonth,
    daemon_month,
    steady_month,
    write_config,
)
from watchdog.cli import main
from watchdog.clock import month_start
from watchdog.reports.month import MonthFigures, month_figures, parse_month
from watchdog.reports.render import daily_rows, report_blocks, summary_rows, to_markdown
from watchdog.reports.source import ReportLedger

END = START + 30 * 86_400


@pytest.fixture(scope="session")
def steady(tmp_path_factory: pytest.TempPathFactory) -> SteadyMonth:
    return steady_month(tmp_path_factory.getbasetemp() / "steady-month")


@pytest.fixture(scope="session")
def figures(steady: SteadyMonth) -> MonthFigures:
    config = sim_config(steady.ledger_path.parent)
    with ReportLedger.open(steady.ledger_path) as ledger:
        return month_figures(ledger, config, START, now=END + 86_400)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> DaemonMonth:
    return daemon_month(tmp_path_factory.getbasetemp() / "daemon-month")


def test_money_is_the_bill_where_billed_and_the_estimate_elsewhere(
    steady: SteadyMonth, figures: MonthFigures
) -> None:
    assert figures.complete and figures.month == "2026-06"
    (endpoint,) = figures.endpoints
    # billed hours at RunPod's figure, to the micro-dollar; the unbilled tail at the estimate
    assert figures.billed_usd == pytest.approx(steady.billed_hours_usd, abs=1e-9)
    assert figures.estimate_only_usd == pytest.approx(steady.unbilled_estimate_usd, abs=1e-9)
    assert 0 < figures.estimate_hours <= UNBILLED_HOURS
    assert figures.billed_hours + figures.estimate_hours >= 700
    # ...and the whole is the simulator's bill (ceil-per-session seconds x price) within 0.1 %
    assert figures.variable_usd == pytest.approx(steady.billed_usd, rel=1e-3)
    assert endpoint.usd == figures.variable_usd
    fixed = 10.0
    assert figures.total_usd == pytest.approx(fixed + steady.billed_usd, rel=1e-3)
    assert figures.eur(figures.total_usd) == pytest.approx(figures.total_usd / 1.16)
    # the drift is measured on billed hours only: the estimate (0.5 s rounding term per session) is close
    assert figures.drift_ratio is not None and abs(figures.drift_ratio) < 0.005


def test_requests_cold_starts_and_cost_per_1000_match_the_simulator(
    steady: SteadyMonth, figures: MonthFigures
) -> None:
    (endpoint,) = figures.endpoints
    assert endpoint.requests == figures.requests == len(steady.jobs)
    assert endpoint.cold_starts == len(steady.sessions)
    assert endpoint.cold_start_p50_s == pytest.approx(12.0) and endpoint.cold_start_p95_s == pytest.approx(
        12.0
    )
    assert endpoint.cold_start_s == pytest.approx(sum(s.initializing_s for s in steady.sessions))
    assert endpoint.mean_execution_s == pytest.approx(8.5, abs=0.01)
    assert figures.cost_per_1000_usd == pytest.approx(steady.billed_usd * 1000 / len(steady.jobs), rel=1e-3)


def test_subsidy_uses_the_measured_free_share(steady: SteadyMonth, figures: MonthFigures) -> None:
    assert figures.free_share_measured
    assert figures.free_share == pytest.approx(steady.free_jobs / len(steady.jobs))
    assert figures.subsidy_usd == pytest.approx(figures.variable_usd * steady.free_jobs / len(steady.jobs))


def test_without_a_measured_tier_the_configured_share_applies(steady: SteadyMonth) -> None:
    config = sim_config(steady.ledger_path.parent, budget={"free_share": 0.25})
    with ReportLedger.open(steady.ledger_path) as ledger:
        july = month_figures(ledger, config, parse_month("2026-07"), now=END + 40 * 86_400)
    assert not july.free_share_measured and july.free_share == 0.25
    assert july.variable_usd == 0 and july.requests == 0 and july.total_usd == pytest.approx(10.0)


def test_incidents_and_savings_come_from_the_decisions(figures: MonthFigures) -> None:
    (incident,) = figures.incidents
    assert (incident.rule, incident.action, incident.mode) == ("idle_leak", "scale_to_zero", "enforce")
    assert incident.outcome == "verified" and incident.steps == 2  # the "intended" trace is not shown
    assert figures.saved_enforce_usd == pytest.approx(SAVED_USD) and figures.saved_dry_run_usd == 0
    assert (figures.alerts, figures.alerts_sent) == (1, 1)


def test_days_and_forecast(steady: SteadyMonth, figures: MonthFigures) -> None:
    assert len(figures.days) == 30
    assert figures.days[0].day == "2026-06-01" and figures.days[-1].day == "2026-06-30"
    assert figures.days[-1].cumulative_usd == pytest.approx(figures.total_usd)
    cumulative = [d.cumulative_usd for d in figures.days]
    assert cumulative == sorted(cumulative) and figures.days[0].cumulative_usd > 10.0
    assert {d.basis for d in figures.days[:-1]} == {"billed"} and figures.days[-1].basis == "mixed"
    assert figures.next_month == "2026-07" and figures.next_month_days == 31
    assert figures.daily_rate_usd == pytest.approx(figures.variable_usd / 30)
    assert figures.forecast_next_month_usd == pytest.approx(10.0 + figures.variable_usd / 30 * 31)
    assert figures.end_of_month_usd == pytest.approx(figures.total_usd)


def test_a_month_in_progress_is_month_to_date_with_a_projection(steady: SteadyMonth) -> None:
    config = sim_config(steady.ledger_path.parent)
    now = START + 10 * 86_400 + 3600
    with ReportLedger.open(steady.ledger_path) as ledger:
        partial = month_figures(ledger, config, START, now=now)
    assert not partial.complete and len(partial.days) == 11
    # the ledger holds the whole month: the figures are cut by day, not by `now` within a day
    assert partial.days_elapsed == pytest.approx((now - START) / 86_400)
    assert partial.end_of_month_usd > partial.total_usd


def test_markdown_says_which_figures_are_billed_and_links_the_chart(
    figures: MonthFigures, tmp_path: Path
) -> None:
    text = to_markdown(report_blocks(figures), "report-2026-06-spend.png")
    assert "![Cumulative spending in June 2026 against the budget](report-2026-06-spend.png)" in text
    total_eur = f"{figures.eur(figures.total_usd):,.2f} €"
    assert f"Spent **{total_eur}** of the **20.00 €** budget" in text
    assert f"RunPod's bill for {figures.billed_hours:,} hours (${figures.billed_usd:,.2f})" in text
    assert f"the live estimate for {figures.estimate_hours:,} hours not billed yet" in text
    assert "measured from the request logs" in text
    assert "$" not in text.split("## Per endpoint")[1].split("## Incidents")[0]  # euros for people
    assert "Next month (2026-07), at this month's daily rate" in text


def test_csv_rows(figures: MonthFigures) -> None:
    summary = {row[0]: row for row in summary_rows(figures)}
    assert summary["total_spent"][1] == f"{figures.eur(figures.total_usd):.2f}"
    assert summary["requests"][1] == str(figures.requests)
    assert summary["free_share"][3] == "measured"
    daily = daily_rows(figures)
    assert len(daily) == 30 and float(daily[-1][3]) == pytest.approx(figures.eur(figures.total_usd), abs=1e-3)


def test_the_command_writes_md_png_svg_and_csv(
    steady: SteadyMonth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, steady.ledger_path)
    out = tmp_path / "out"
    assert main(["report", "--month", "2026-06", "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "report-2026-06.md" in printed and "2026-06: " in printed
    assert (out / "report-2026-06.md").is_file()
    png = (out / "report-2026-06-spend.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert '<g id="cumulative-spend">' in (out / "report-2026-06-spend.svg").read_text()
    assert "](report-2026-06-spend.png)" in (out / "report-2026-06.md").read_text()
    assert (
        main(["report", "--month", "2026-06", "--format", "csv", "--config", str(config), "--out", str(out)])
        == 0
    )
    with (out / "report-2026-06-daily.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 30 and rows[0]["basis"] == "billed"


def test_bad_month_is_exit_2_and_a_missing_ledger_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, tmp_path / "none.sqlite3")
    assert main(["report", "--month", "June", "--config", str(config)]) == 2
    assert main(["report", "--month", "2026-06", "--config", str(config)]) == 1
    assert "no ledger" in capsys.readouterr().err


def test_the_real_daemons_ledger_reports_the_hung_job_it_would_have_cancelled(live: DaemonMonth) -> None:
    config = sim_config(live.ledger_path.parent)
    with ReportLedger.open(live.ledger_path) as ledger:
        month = month_figures(ledger, config, month_start(live.end), now=live.end)
    assert not month.complete
    runaway = [i for i in month.incidents if i.rule == "runaway_job" and i.action == "cancel_job"]
    assert runaway and runaway[0].mode == "dry-run" and runaway[0].outcome == "proposed"
    assert month.saved_dry_run_usd > 10 and month.saved_enforce_usd == 0  # days of an A6000 left in June
    # money: what the simulator billed, through RunPod's billing API as the daemon read it every 5 minutes
    truth = live.sim.billed_usd_total()
    assert month.billed_hours > 0
    assert month.variable_usd == pytest.approx(truth, rel=0.02)
    # requests: the access log's request lines (the daemon's traffic table) are every request sent
    sent = sum(s.sent for s in live.sim.traffic_sources()) + 1  # + the hung job, submitted directly
    assert month.requests == pytest.approx(sent, abs=1)
    text = to_markdown(report_blocks(month), None)
    assert "proposed only (dry-run)" in text and "would have saved" in text
    assert "Chart not drawn" in text  # no chart file given
    assert not math.isnan(month.forecast_next_month_usd)


def test_without_matplotlib_the_report_is_complete_and_says_how_to_get_the_chart(
    steady: SteadyMonth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as in the daemon's lean install
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    config = write_config(tmp_path, steady.ledger_path)
    assert main(["report", "--month", "2026-06", "--config", str(config), "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report-2026-06.md").read_text()
    assert "pip install 'runpod-watchdog[report]'" in text and "Spent **" in text
    assert not list(tmp_path.glob("*.png"))
    assert "no chart" in capsys.readouterr().err
