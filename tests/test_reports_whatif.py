"""The what-if replay: a pure model of a serverless endpoint, validated against the simulator, and
`runpod-watchdog whatif` on a simulated month's ledger."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from runpod_sim.engine import Simulator
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import MONTH_S, STEADY_ENDPOINT_ID
from runpod_sim.state import SimJob
from sim_harness.wiring import sim_config
from tests.reports.sim_month import START, SteadyMonth, steady_month, write_config
from watchdog.cli import main
from watchdog.clock import ManualClock
from watchdog.money import usd_to_eur
from watchdog.prices import DEFAULT_PRICES
from watchdog.reports.replay import Arrival, EndpointModel, hold_for_batches, replay
from watchdog.reports.source import ReportLedger
from watchdog.reports.whatif import (
    IDLE_TIMEOUTS_S,
    SPEED_FACTORS,
    Candidate,
    WhatIfError,
    evaluate,
    gpu_options,
    load_inputs,
    parse_batch_times,
    parse_speeds,
    today,
    whatif_options,
    whatif_text,
)

A6000 = 0.00034
A6000_ACTIVE = 0.00024
END = START + MONTH_S


def _model(**changes: float) -> EndpointModel:
    fields = {
        "idle_timeout_s": 5.0,
        "cold_start_s": 12.0,
        "flex_usd_per_s": A6000,
        "active_usd_per_s": A6000_ACTIVE,
    }
    fields.update(changes)
    return EndpointModel(**fields)  # type: ignore[arg-type]


# -- the model, by hand --------------------------------------------------------------------------------------


def test_one_request_is_a_cold_start_its_execution_and_the_idle_tail_rounded_up() -> None:
    result = replay([Arrival(100.0, 8.5)], _model(), start=0, end=1000)
    (session,) = result.sessions
    assert (session.initializing_s, session.busy_s, session.idle_s) == pytest.approx((12, 8.5, 5))
    assert session.billed_s == 26  # 25.5 s rounded up per session
    assert result.usd == pytest.approx(26 * A6000)
    assert result.waits_s == (pytest.approx(12.0),)


def test_a_request_in_the_idle_tail_reuses_the_warm_worker() -> None:
    result = replay([Arrival(0.0, 8.5), Arrival(23.0, 8.5)], _model(), start=0, end=1000)
    assert result.cold_starts == 1
    assert result.waits_s == (pytest.approx(12.0), pytest.approx(0.0))
    assert result.sessions[0].billed_s == math.ceil(12 + 8.5 + 2.5 + 8.5 + 5)


def test_max_one_worker_queues_the_second_request() -> None:
    result = replay([Arrival(0.0, 8.5), Arrival(1.0, 8.5)], _model(), start=0, end=1000)
    assert result.cold_starts == 1
    assert result.waits_s == (pytest.approx(12.0), pytest.approx(12.0 + 8.5 - 1.0))


def test_a_second_worker_starts_after_the_queue_delay_when_max_workers_allows() -> None:
    arrivals = [Arrival(0.0, 60.0), Arrival(20.0, 8.5)]
    result = replay(arrivals, _model(workers_max=2), start=0, end=1000)
    assert result.cold_starts == 2
    assert result.waits_s[1] == pytest.approx(4.0 + 12.0)  # waited the scaler's 4 s, then a cold start


def test_an_active_worker_is_billed_all_window_at_the_active_price_and_never_waits() -> None:
    result = replay([Arrival(10.0, 8.5)], _model(workers_min=1), start=0, end=3600)
    assert result.cold_starts == 0 and result.flex_usd == 0
    assert result.active_usd == pytest.approx(3600 * A6000_ACTIVE)
    assert result.waits_s == (0.0,)


def test_free_requests_are_held_until_the_next_batch_time() -> None:
    day = 86_400.0 * 100
    arrivals = [
        Arrival(day + 7 * 3600, 8.5, free=True),
        Arrival(day + 7 * 3600, 8.5),
        Arrival(day + 23 * 3600, 1, True),
    ]
    held = hold_for_batches(arrivals, parse_batch_times("00:00,12:00"))
    assert held[0].release_at == day + 12 * 3600 and held[1].release_at is None
    assert held[2].release_at == day + 86_400  # the next day's first batch
    assert parse_batch_times("") == ()
    with pytest.raises(WhatIfError):
        parse_batch_times("25:00")


# -- validation against the simulator ------------------------------------------------------------------------


def _simulated_month(idle_timeout: int | None = None) -> tuple[Simulator, list[SimJob]]:
    clock = ManualClock(START)
    sim = build_simulator("steady", clock=clock, seed=0)
    if idle_timeout is not None:
        sim.update_endpoint(STEADY_ENDPOINT_ID, {"idle_timeout": idle_timeout})
    jobs: list[SimJob] = []
    sim.add_job_listener(jobs.append)
    clock.advance(MONTH_S)
    sim.sync()
    return sim, jobs


def _arrivals(jobs: list[SimJob]) -> list[Arrival]:
    return [Arrival(j.submitted_at, float(j.input["sim"]["duration_s"])) for j in jobs]


@pytest.fixture(scope="module")
def simulated() -> tuple[Simulator, list[SimJob]]:
    return _simulated_month()


def test_replay_of_the_settings_used_is_the_simulators_bill_within_2_percent(simulated) -> None:
    sim, jobs = simulated
    result = replay(_arrivals(jobs), _model(), start=START, end=END)
    truth = sim.billed_usd_total()
    assert result.usd == pytest.approx(truth, rel=0.02)
    assert result.cold_starts == len(sim.sessions())
    print(f"steady month, idle 5 s: replay ${result.usd:.4f}, simulator ${truth:.4f}")


@pytest.mark.parametrize("idle_timeout", [1, 60])
def test_replay_predicts_a_month_lived_with_another_idle_timeout_within_5_percent(
    simulated, idle_timeout: int
) -> None:
    _, jobs = simulated  # the arrivals recorded under the settings used (idle timeout 5 s)
    predicted = replay(_arrivals(jobs), _model(idle_timeout_s=idle_timeout), start=START, end=END).usd
    other, _ = _simulated_month(idle_timeout)  # the same traffic lived with the new timeout
    truth = other.billed_usd_total()
    assert predicted == pytest.approx(truth, rel=0.05)
    print(f"steady month, idle {idle_timeout} s: replay ${predicted:.4f}, simulator ${truth:.4f}")


# -- the command, on a simulated month's ledger ----------------------------------------------------------------


@pytest.fixture(scope="session")
def steady(tmp_path_factory: pytest.TempPathFactory) -> SteadyMonth:
    return steady_month(tmp_path_factory.getbasetemp() / "steady-month")


@pytest.fixture(scope="session")
def counts_only(tmp_path_factory: pytest.TempPathFactory) -> SteadyMonth:
    return steady_month(tmp_path_factory.getbasetemp() / "steady-month-counts", with_jobs=False)


def test_inputs_from_job_records_replay_to_the_simulators_bill(steady: SteadyMonth) -> None:
    config = sim_config(steady.ledger_path.parent)
    with ReportLedger.open(steady.ledger_path) as ledger:
        inputs = load_inputs(ledger, config, endpoint=None, days=30, now=END)
    assert inputs.from_jobs == len(steady.jobs) and inputs.from_counts == 0
    assert inputs.cold_start_s == pytest.approx(12.0) and inputs.idle_timeout_s == 5
    assert inputs.gpu.gpu_type_id == "NVIDIA RTX A6000"
    assert inputs.free_share == pytest.approx(steady.free_jobs / len(steady.jobs))
    outcome = evaluate(inputs, today(inputs, SPEED_FACTORS), ())
    assert inputs.per_month(1.0) == pytest.approx(1.0)  # a 30-day window is a month
    assert outcome.usd_month == pytest.approx(steady.billed_usd, rel=0.02)


def test_inputs_from_minute_counts_alone_replay_within_5_percent(counts_only: SteadyMonth) -> None:
    config = sim_config(counts_only.ledger_path.parent)
    with ReportLedger.open(counts_only.ledger_path) as ledger:
        derived = load_inputs(ledger, config, endpoint="ep-llm-mos", days=30, now=END)
        inputs = load_inputs(ledger, config, endpoint="ep-llm-mos", days=30, now=END, exec_s=8.5)
    # no job timing: the execution time is the workers' running seconds per request
    assert "running seconds" in derived.exec_source and derived.mean_exec_s == pytest.approx(8.5, abs=0.05)
    assert inputs.from_jobs == 0 and inputs.from_counts == len(counts_only.jobs)
    for case in (derived, inputs):
        outcome = evaluate(case, today(case, SPEED_FACTORS), ())
        assert outcome.usd_month == pytest.approx(counts_only.billed_usd, rel=0.05)
        print(f"minute counts only: replay ${outcome.usd_month:.4f}, simulator ${counts_only.billed_usd:.4f}")
    empty = sim_config(counts_only.ledger_path.parent)
    with ReportLedger.open(counts_only.ledger_path) as ledger, pytest.raises(WhatIfError, match="--exec-s"):
        load_inputs(ledger, empty, endpoint="ep-llm-mos", days=30, now=END + 60 * 86_400)


def test_speed_factors_scale_execution_on_another_gpu(steady: SteadyMonth) -> None:
    speeds = parse_speeds(["A4000=2.0"], DEFAULT_PRICES)
    assert speeds["NVIDIA RTX A4000"] == 2.0 and speeds["NVIDIA RTX A6000"] == 1.0
    with pytest.raises(WhatIfError):
        parse_speeds(["A4000"], DEFAULT_PRICES)
    config = sim_config(steady.ledger_path.parent)
    with ReportLedger.open(steady.ledger_path) as ledger:
        inputs = load_inputs(ledger, config, endpoint=None, days=7, now=END)
    a4000 = DEFAULT_PRICES.lookup("NVIDIA RTX A4000")
    slow = evaluate(inputs, Candidate(5, 0, a4000, 2.0, inputs.cold_start_s, False), ())
    base = evaluate(inputs, today(inputs, speeds), ())
    assert slow.wait_p50_s == pytest.approx(
        base.wait_p50_s + 8.5, abs=0.1
    )  # the added wait counts slower work


def test_the_command_prints_options_and_the_cheapest_fit(steady: SteadyMonth, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, steady.ledger_path)
    args = ["whatif", "ep-llm-mos", "--days", "7", "--until", "2026-07-01", "--cold-start-s", "3"]
    assert main([*args, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "requests replayed over 7.0 days" in out and "Cheapest combination" in out
    assert main([*args, "--speed", "nonsense", "--config", str(config)]) == 2
    assert main([*args[:-2], "--until", "someday", "--config", str(config)]) == 2
    assert main(["whatif", "ep-nope", "--until", "2026-07-01", "--config", str(config)]) == 2
    assert "no endpoint 'ep-nope'" in capsys.readouterr().err


def test_whatif_text_on_the_month(steady: SteadyMonth) -> None:
    import io

    from watchdog.reports.commands import run_whatif

    config = sim_config(steady.ledger_path.parent)
    out = io.StringIO()
    args = argparse.Namespace(
        endpoint=None,
        days=30.0,
        max_wait_p95=None,
        cold_start_s=3.0,
        baseline_cold_start_s=None,
        exec_s=None,
        speed=[],
        batch_times="00:00,06:00,12:00,18:00",
    )
    assert run_whatif(config, args, now=END, out=out) == 0
    text = out.getvalue()
    assert "5 s (today)" in text and "1 s " in text and "300 s" in text
    assert "RTX A4000 ×1.71" in text.replace("RTX A4000 x", "RTX A4000 ×")
    assert "held for the batches" in text and "3.0 s (assumed)" in text
    assert "Cheapest combination within the budget and a p95 wait of at most 12.0 s (today's)" in text
    best = text.split("Cheapest combination")[1]
    assert "Changes:" in best and "€/month" in best
    assert "Traceback" not in text


def test_whatif_options_are_the_figures_the_command_prints(steady: SteadyMonth) -> None:
    """The structured options (what the dashboard draws) and the text (what the command prints) are one
    computation: every row's € per month and waits appear in the text, and the search is the same."""
    config = sim_config(steady.ledger_path.parent)
    with ReportLedger.open(steady.ledger_path) as ledger:
        inputs = load_inputs(ledger, config, endpoint=None, days=7, now=END)
        text = whatif_text(
            ledger,
            config,
            endpoint=None,
            days=7,
            now=END,
            max_wait_p95_s=None,
            flashboot_cold_start_s=None,
            baseline_cold_start_s=None,
            exec_s=None,
            speeds=SPEED_FACTORS,
            batch_times_s=(),
        )
    options = whatif_options(inputs, config, speeds=SPEED_FACTORS)
    rate = config.budget.usd_per_eur
    base = evaluate(inputs, today(inputs, SPEED_FACTORS), ())
    assert options.base == base and options.max_wait_s == base.wait_p95_s and not options.max_wait_given
    assert [o.outcome.candidate.idle_timeout_s for o in options.idle] == sorted(
        {*IDLE_TIMEOUTS_S, inputs.idle_timeout_s}
    )
    assert [o.label for o in options.workers] == ["0", "1"]
    assert [o.note for o in options.idle if o.note] == ["today"]
    assert len(options.gpus) == len(gpu_options(inputs, config.price_table, SPEED_FACTORS))
    assert options.cold_starts == () and options.batching == ()  # nothing assumed, no batch times
    assert options.budget_usd_month == pytest.approx(
        config.budget.monthly_usd - config.budget.fixed_usd_per_month - inputs.per_month(inputs.others_usd)
    )
    tables = {block.split(" ", 1)[0]: block.splitlines() for block in text.split("\n\n")}
    for title, rows in (("Idle", options.idle), ("Active", options.workers), ("GPU", options.gpus)):
        for option in rows:
            row = next(line for line in tables[title] if line.startswith(f"  {option.label} "))
            assert f"{usd_to_eur(option.outcome.usd_month, rate):,.2f} €" in row
            assert f"{option.outcome.wait_p95_s:,.1f} s" in row
    found = options.found
    assert found is not None and found.usd_month <= base.usd_month
    assert f"  {usd_to_eur(found.usd_month, rate):,.2f} €/month" in text
    assert "Changes: " + "; ".join(options.changes()) in text


def test_whatif_options_with_assumptions_add_their_rows(steady: SteadyMonth) -> None:
    config = sim_config(steady.ledger_path.parent)
    with ReportLedger.open(steady.ledger_path) as ledger:
        inputs = load_inputs(ledger, config, endpoint=None, days=7, now=END)
    batches = parse_batch_times("00:00,12:00")
    options = whatif_options(
        inputs, config, speeds=SPEED_FACTORS, flashboot_cold_start_s=3.0, batch_times_s=batches
    )
    assert [(o.label, o.note) for o in options.cold_starts] == [("12.0 s", "today"), ("3.0 s", "assumed")]
    assert [o.note for o in options.batching] == ["today", ""]
    assert options.batching[0].outcome is options.base
    assert options.batching[1].outcome.held_mean_s is not None
    strict = whatif_options(inputs, config, speeds=SPEED_FACTORS, max_wait_p95_s=0.0)
    assert strict.max_wait_given and strict.found is not None
    assert strict.found.candidate.workers_min == 1  # only an active worker never waits
    assert strict.search.best is None  # and it does not fit the budget
