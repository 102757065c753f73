"""`runpod-watchdog checklist ENDPOINT`: the seed's pre-launch checklist on a simulated month's ledger."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import STEADY_ENDPOINT_ID
from sim_harness.wiring import sim_config, sim_secrets, sim_transport
from tests.reports.sim_month import START, SteadyMonth, steady_month, write_config
from watchdog.cli import main
from watchdog.clock import ManualClock
from watchdog.config import Secrets
from watchdog.reports.commands import run_checklist

NOW = START + 30 * 86_400 - 60  # the month's last minute: the last 30 days are the simulated month
ANSWERS = [
    "model_size_fp16_gb=14.5",
    "model_size_int4_gb=4.1",
    "docker_build_plan=yes, docker/Dockerfile.int4",
]


@pytest.fixture(scope="session")
def steady(tmp_path_factory: pytest.TempPathFactory) -> SteadyMonth:
    return steady_month(tmp_path_factory.getbasetemp() / "steady-month")


def _args(
    tmp_path: Path, *answers: str, live: bool = False, endpoint: str = STEADY_ENDPOINT_ID
) -> argparse.Namespace:
    return argparse.Namespace(
        endpoint=endpoint,
        answer=list(answers),
        answers_file=str(tmp_path / "answers.json"),
        report_dir=str(tmp_path / "impact"),
        live=live,
    )


def _run(steady: SteadyMonth, tmp_path: Path, *answers: str, **config_changes: dict) -> tuple[int, str]:
    config = sim_config(steady.ledger_path.parent, **config_changes)
    out = io.StringIO()
    code = run_checklist(config, Secrets(), _args(tmp_path, *answers), now=NOW, out=out)
    return code, out.getvalue()


def test_the_steady_month_is_not_ready_its_real_cost_per_1000_is_above_3_usd(
    steady: SteadyMonth, tmp_path: Path
) -> None:
    code, text = _run(steady, tmp_path)
    assert code == 1
    assert "[TODO] 1. model size in FP16" in text and "--answer model_size_fp16_gb=VALUE" in text
    assert "[FAIL] 2. cost per 1,000 requests" in text
    per_1000 = steady.billed_usd * 1000 / len(steady.jobs)  # the simulator's truth
    assert f"the real bill ${per_1000:.2f} per 1,000" in text and "measured latency 8.50 s" in text
    assert "[PASS] 3." in text and "execution timeout 120 s" in text
    assert "[PASS] 4." in text and "alert(s) delivered" in text
    assert "[PASS] 5. impact documented for funders" in text
    assert (tmp_path / "impact" / "report-2026-06.md").is_file()


def test_answers_are_recorded_and_everything_passes_with_a_higher_alert_level(
    steady: SteadyMonth, tmp_path: Path
) -> None:
    code, text = _run(steady, tmp_path, *ANSWERS, slack={"cost_per_1000_alert_usd": 10.0})
    assert code == 0, text
    assert "Result: READY" in text
    saved = json.loads((tmp_path / "answers.json").read_text())
    assert saved == {
        "model_size_fp16_gb": "14.5",
        "model_size_int4_gb": "4.1",
        "docker_build_plan": "yes, docker/Dockerfile.int4",
    }
    code, text = _run(steady, tmp_path, slack={"cost_per_1000_alert_usd": 10.0})  # read back from the file
    assert code == 0
    code, text = _run(steady, tmp_path, "docker_build_plan=no", slack={"cost_per_1000_alert_usd": 10.0})
    assert code == 1 and "update the Docker build plan first" in text


def test_a_policy_violation_fails_step_3(steady: SteadyMonth, tmp_path: Path) -> None:
    code, text = _run(steady, tmp_path, *ANSWERS, policy={"max_idle_timeout_s": 2})
    assert code == 1 and "[FAIL] 3." in text and "idle timeout 5 s > 2 s" in text


def test_bad_usage_is_exit_2(steady: SteadyMonth, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, steady.ledger_path)
    base = [
        "checklist",
        STEADY_ENDPOINT_ID,
        "--answers-file",
        str(tmp_path / "a.json"),
        "--config",
        str(config),
    ]
    assert main([*base, "--answer", "colour=blue"]) == 2
    assert main([*base, "--answer", "model_size_int4_gb=four"]) == 2
    assert main(["checklist", "ep-nope", "--config", str(config)]) == 2
    assert "no endpoint 'ep-nope'" in capsys.readouterr().err
    assert not (tmp_path / "a.json").exists()  # a refused answer writes nothing


def test_live_read_through_the_client_wins_over_the_ledger(steady: SteadyMonth, tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    sim = build_simulator("steady", clock=clock, seed=0)
    sim.update_endpoint(
        STEADY_ENDPOINT_ID, {"idle_timeout": 300}
    )  # someone changed it since the ledger saw it
    config = sim_config(steady.ledger_path.parent, slack={"cost_per_1000_alert_usd": 10.0})
    out = io.StringIO()
    code = run_checklist(
        config,
        sim_secrets(),
        _args(tmp_path, *ANSWERS, live=True),
        now=NOW,
        out=out,
        transport=sim_transport(sim),
    )
    text = out.getvalue()
    assert code == 1 and "idle timeout 300 s > 10 s (from RunPod (live read))" in text
    no_key = run_checklist(config, Secrets(), _args(tmp_path, live=True), now=NOW, out=io.StringIO())
    assert no_key == 2
