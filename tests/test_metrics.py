"""The exporter: names, initialised series, promtool's lint, the shipped alert rules, and TLS-free serving
on loopback. The daemon-fed golden file and the real-Prometheus scrape live in test_prometheus_e2e.py."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest

from watchdog.metrics import RULE_ACTIONS, build_registry, serve_metrics
from watchdog.status import COLD_START_BUCKETS_S, BudgetView, DaemonStatus, EndpointView, StatusRef

REPO = Path(__file__).resolve().parent.parent
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="PROMTOOL MISSING: install Debian's prometheus package (make test does)"
)


def sample_status() -> DaemonStatus:
    budget = BudgetView(
        month="2026-11",
        monthly_eur=20.0,
        usd_per_eur=1.16,
        spent_eur=16.2,
        fixed_eur=8.62,
        variable_eur=7.58,
        estimate_eur=7.58,
        billed_eur=7.1,
        used_ratio=0.81,
        forecast_eur=19.4,
        days_left=4.5,
        eur_per_day_allowed=0.84,
        free_share_eur=2.27,
        free_share=0.3,
        free_share_measured=False,
        thresholds=(0.5, 0.8, 1.0),
        thresholds_crossed=(0.5, 0.8),
    )
    endpoint = EndpointView(
        id="ep-llm-mos",
        name="llm-moore",
        mode="enforce",
        workers={"RUNNING": 1},
        jobs={"completed": 120, "inProgress": 1},
        oldest_work_s=42.0,
        work_limit_s=150.0,
        cold_start_p50_s=11.0,
        cold_start_p95_s=14.0,
        cold_start_buckets=(0, 0, 0, 3, 9, 10, 10, 10, 10, 10),
        cold_start_sum_s=118.0,
        cold_start_count=10,
        gpu_seconds_today=300.0,
        gpu_seconds_month=22000.0,
        gpu_seconds_by_type={"NVIDIA RTX A6000": 22000.0},
        spend_month_eur=6.45,
        requests_month=2300,
        requests_24h=100,
        pings_1h=360,
        requests_1h=4,
        cost_per_1000_month_usd=3.25,
        cost_per_1000_24h_usd=2.9,
        config={"workers_max": 1},
        compliance={"execution_timeout": False},
    )
    return DaemonStatus(
        started_at=1_764_000_000.0,
        last_tick_at=1_764_000_100.0,
        last_tick_ok=True,
        last_tick_duration_s=0.2,
        tick_interval_s=5.0,
        blind=False,
        blind_reason="",
        mode="enforce",
        budget=budget,
        endpoints=(endpoint,),
        actions={"runaway_job|cancel_job|enforce|verified": 1},
        saved_usd={"runaway_job|enforce": 4.1},
        api_calls={"GET /v2/serverless|200": 20},
    )


def _sample(text: str, line_prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_prefix!r} in:\n{text}")


def test_seed_indicators_and_budget_are_exported() -> None:
    text = generate_latest(build_registry(StatusRef(sample_status()), with_process_metrics=False)).decode()
    assert _sample(text, 'runpod_watchdog_month_spend_eur{source="billed"}') == 7.1
    assert _sample(text, "runpod_watchdog_budget_used_ratio") == 0.81
    assert _sample(text, 'runpod_watchdog_cold_start_seconds_bucket{endpoint="ep-llm-mos",le="15.0"}') == 9
    assert _sample(text, 'runpod_watchdog_cold_start_seconds_count{endpoint="ep-llm-mos"}') == 10
    assert (
        _sample(text, 'runpod_watchdog_gpu_seconds_total{endpoint="ep-llm-mos",gpu_type="NVIDIA RTX A6000"}')
        == 22000.0
    )
    assert (
        _sample(text, 'runpod_watchdog_cost_per_1000_requests_usd{endpoint="ep-llm-mos",window="month"}')
        == 3.25
    )
    assert (
        _sample(text, 'runpod_watchdog_endpoint_compliant{check="execution_timeout",endpoint="ep-llm-mos"}')
        == 0
    )
    assert _sample(text, 'runpod_watchdog_workers{endpoint="ep-llm-mos",state="idle"}') == 0
    assert len(COLD_START_BUCKETS_S) == 10


def test_labelled_series_exist_at_zero_before_anything_happens() -> None:
    text = generate_latest(build_registry(StatusRef(sample_status()), with_process_metrics=False)).decode()
    for rule, actions in RULE_ACTIONS.items():
        for action in actions:
            prefix = f'runpod_watchdog_actions_total{{action="{action}",mode="dry-run",outcome="failed",rule="{rule}"}}'
            assert _sample(text, prefix) == 0
    assert _sample(text, 'runpod_watchdog_saved_usd_total{mode="enforce",rule="runaway_job"}') == 4.1


def test_before_the_first_tick_the_scrape_still_succeeds() -> None:
    text = generate_latest(build_registry(StatusRef(None), with_process_metrics=False)).decode()
    assert _sample(text, "runpod_watchdog_status_available") == 0


@needs_promtool
def test_promtool_lints_the_exposition_clean() -> None:
    text = generate_latest(build_registry(StatusRef(sample_status()))).decode()
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_shipped_alert_rules_pass_their_unit_tests() -> None:
    rules = REPO / "prometheus"
    check = subprocess.run(
        [PROMTOOL, "check", "rules", "runpod-watchdog.rules.yml"],
        cwd=rules,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(
        [PROMTOOL, "test", "rules", "rules_test.yml"], cwd=rules, capture_output=True, text=True, check=False
    )
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout


def test_exporter_serves_on_loopback() -> None:
    server, thread = serve_metrics(build_registry(StatusRef(sample_status())), "127.0.0.1:0")
    try:
        port = server.server_port
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert response.status_code == 200
        assert "runpod_watchdog_budget_eur 20.0" in response.text
        assert "process_resident_memory_bytes" in response.text
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.mark.skipif(
    shutil.which("openssl") is None, reason="OPENSSL MISSING: needed to make a test certificate"
)
def test_exporter_serves_tls_when_given_a_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server, thread = serve_metrics(
        build_registry(StatusRef(sample_status())), "127.0.0.1:0", certfile=str(cert), keyfile=str(key)
    )
    try:
        port = server.server_port
        trust = ssl.create_default_context(cafile=str(cert))
        response = httpx.get(f"https://127.0.0.1:{port}/metrics", verify=trust, timeout=5)
        assert response.status_code == 200 and "runpod_watchdog_budget_eur 20.0" in response.text
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)  # plain HTTP is refused on a TLS port
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_targets_are_the_configured_ones_not_copies() -> None:
    """The cost and cold-start limits used to be written into the help texts (3 USD, 15 s); they are
    gauges of the configured values, which the shipped alert rules compare against."""
    from dataclasses import replace

    from watchdog.status import StatusTargets

    status = replace(sample_status(), targets=StatusTargets(5.0, 20.0, (0.6, 0.9), 0.9))
    ref = StatusRef(status)
    text = generate_latest(build_registry(ref)).decode()
    assert _sample(text, "runpod_watchdog_cost_per_1000_requests_target_usd") == 5.0
    assert _sample(text, "runpod_watchdog_cold_start_target_seconds") == 20.0
    assert _sample(text, "runpod_watchdog_budget_brake_ratio") == 0.9
    assert "15 s" not in text and "above 3" not in text
