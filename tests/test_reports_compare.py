"""`runpod-watchdog compare`: the seed's provider table, to the cent, and what it leaves out."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim_harness.wiring import sim_config
from tests.reports.sim_month import START, SteadyMonth, steady_month, write_config
from watchdog.cli import main
from watchdog.prices import DEFAULT_PRICES
from watchdog.reports.providers import (
    SEED_REQUESTS,
    SEED_SECONDS,
    Traffic,
    active_usd,
    compare_text,
    dedicated_rows,
    find_gpu,
    flex_usd,
    measured_month,
)
from watchdog.reports.source import ReportLedger


@pytest.fixture(scope="session")
def steady(tmp_path_factory: pytest.TempPathFactory) -> SteadyMonth:
    return steady_month(tmp_path_factory.getbasetemp() / "steady-month")


def test_the_seeds_figures_to_the_cent() -> None:
    rows = {r.provider: r for r in dedicated_rows(SEED_REQUESTS)}
    assert round(rows["AWS EC2 g4dn.xlarge"].monthly_usd, 2) == 378.72
    assert round(rows["AWS EC2 g4dn.xlarge"].per_1000_usd or 0, 2) == 126.24
    assert round(rows["Azure VM NC4as T4 v3"].monthly_usd, 2) == 378.72
    assert round(rows["Azure VM NC4as T4 v3"].per_1000_usd or 0, 2) == 126.24
    assert round(rows["Hugging Face Inference Endpoints"].monthly_usd, 2) == 360.00
    assert round(rows["Hugging Face Inference Endpoints"].per_1000_usd or 0, 2) == 120.00
    a6000 = find_gpu(DEFAULT_PRICES, "A6000")
    flex = flex_usd(Traffic(SEED_REQUESTS, SEED_SECONDS, "seed"), a6000)
    assert round(flex, 2) == 8.67 and round(flex * 1000 / SEED_REQUESTS, 2) == 2.89
    assert round(active_usd(a6000), 2) == 622.08  # runpod-api.md §6: one active A6000 for 30 days


def test_the_command_prints_the_seeds_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, tmp_path / "absent.sqlite3")
    assert main(["compare", "--requests", "3000", "--seconds", "8.5", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    aws = lines["AWS EC2 g4dn.xlarge"]
    assert "378.72 USD" in aws and aws.rstrip().endswith("126.24 USD")
    azure = lines["Azure VM NC4as T4 v3"]
    assert "378.72 USD" in azure and azure.rstrip().endswith("126.24 USD")
    hf = lines["Hugging Face Inference Endpoints"]
    assert "360.00 USD" in hf and hf.rstrip().endswith("120.00 USD")
    runpod = lines["RunPod serverless flex"]
    assert "RTX A6000" in runpod and "8.67 USD" in runpod and runpod.rstrip().endswith("2.89 USD")
    assert "nothing measured" in out  # no ledger: the overheads are named, not measured
    for gpu in DEFAULT_PRICES.gpus:  # every GPU type, flex and active
        assert gpu.gpu_type_id in out


def test_bad_gpu_or_numbers_are_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "absent.sqlite3")
    assert main(["compare", "--gpu", "TPU", "--config", str(config)]) == 2
    assert main(["compare", "--seconds", "0", "--config", str(config)]) == 2
    assert main(["compare", "--month", "2026-13", "--config", str(config)]) == 2
    with pytest.raises(ValueError, match="ambiguous"):
        find_gpu(DEFAULT_PRICES, "RTX")


def test_measured_month_shows_what_the_seed_leaves_out(steady: SteadyMonth) -> None:
    config = sim_config(steady.ledger_path.parent)
    with ReportLedger.open(steady.ledger_path) as ledger:
        measured = measured_month(ledger, config, START, now=START + 40 * 86_400)
    assert measured is not None
    assert measured.requests == len(steady.jobs)
    assert measured.mean_execution_s == pytest.approx(8.5, abs=0.01)
    assert measured.sessions == len(steady.sessions)
    price = steady.price
    assert measured.cold_start_s * price == pytest.approx(
        sum(s.initializing_s for s in steady.sessions) * price
    )
    assert measured.idle_s == pytest.approx(sum(s.idle_s for s in steady.sessions))
    assert measured.bill_usd == pytest.approx(steady.billed_usd, rel=1e-3)  # the RunPod line is the real bill
    text = compare_text(config, requests=None, seconds=None, gpu=None, measured=measured)
    assert f"Provider comparison for {len(steady.jobs):,} requests" in text and "measured in 2026-06" in text
    assert f"RunPod's real bill        {measured.bill_usd:6.2f} USD".replace("  ", "") in text.replace(
        "  ", ""
    )
    cold = sum(s.initializing_s for s in steady.sessions) * price
    assert f"{cold:.2f} USD" in text and "cold starts (" in text and "idle tails (" in text
    seeded = compare_text(config, requests=3000, seconds=8.5, gpu="A6000", measured=measured)
    assert "8.67 USD" in seeded and "2.89 USD" in seeded
    assert "With 3,000 requests × 8.5 s and this month's overheads per request" in seeded
