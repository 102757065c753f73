"""The exporter: names, initialised series, series per endpoint, promtool's lint, the shipped alert rules,
and serving on loopback (plain and TLS). The renderer and the HTTP server's limits are in
test_metrics_server.py; the daemon-fed golden file and the real-Prometheus scrape in test_prometheus_e2e.py;
a real daemon under a scrape flood in test_metrics_flood.py."""

from __future__ import annotations

import dataclasses
import gzip
import shutil
import ssl
import subprocess
import zlib
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from watchdog.metrics import (
    RULE_ACTIONS,
    SERIES_PER_ENDPOINT,
    MetricsPublisher,
    build_registry,
    cold_starts_over,
    start_exporter,
)
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
    # the histogram is account-wide; per endpoint, the two counters the cold-start alert divides
    assert _sample(text, 'runpod_watchdog_cold_start_seconds_bucket{le="15.0"}') == 9
    assert _sample(text, "runpod_watchdog_cold_start_seconds_count") == 10
    assert _sample(text, 'runpod_watchdog_cold_starts_total{endpoint="ep-llm-mos"}') == 10
    assert _sample(text, 'runpod_watchdog_cold_starts_over_target_total{endpoint="ep-llm-mos"}') == 1
    assert _sample(text, 'runpod_watchdog_gpu_seconds_total{gpu_type="NVIDIA RTX A6000"}') == 22000.0
    assert (
        _sample(text, 'runpod_watchdog_cost_per_1000_requests_usd{endpoint="ep-llm-mos",window="24h"}') == 2.9
    )
    assert _sample(text, 'runpod_watchdog_endpoints_noncompliant{check="execution_timeout"}') == 1
    assert _sample(text, 'runpod_watchdog_endpoints_noncompliant{check="idle_timeout"}') == 0
    assert _sample(text, 'runpod_watchdog_workers{endpoint="ep-llm-mos",state="idle"}') == 0
    assert _sample(text, 'runpod_watchdog_jobs{endpoint="ep-llm-mos",state="inQueue"}') == 0
    assert _sample(text, 'runpod_watchdog_requests{window="24h"}') == 100
    assert _sample(text, "runpod_watchdog_endpoints") == 1
    assert len(COLD_START_BUCKETS_S) == 10


def _endpoints(count: int) -> DaemonStatus:
    base = sample_status()
    template = base.endpoints[0]
    endpoints = tuple(
        dataclasses.replace(
            template,
            id=f"ep-{index:05d}",
            gpu_seconds_by_type={f"GPU {index % 3}": 10.0 * index, "NVIDIA RTX A6000": 1.0},
            paused="brake" if index % 7 == 0 else None,
            suspicious=("pings",) * (index % 3),
        )
        for index in range(count)
    )
    return dataclasses.replace(base, endpoints=endpoints)


def _split_series(status: DaemonStatus) -> tuple[int, int, set[str]]:
    """(samples with an endpoint label, samples without, names of the former) in the rendered status."""
    exposition = MetricsPublisher(StatusRef(status), with_process_metrics=False).refresh().text.decode()
    per_endpoint = account_wide = 0
    names = set()
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if "endpoint" in sample.labels:
                per_endpoint += 1
                names.add(sample.name)
            else:
                account_wide += 1
    return per_endpoint, account_wide, names


@pytest.mark.parametrize("count", [1, 10, 1000])
def test_each_endpoint_adds_the_same_few_series(count: int) -> None:
    """The issue's target: at most 15 series per endpoint, whatever the endpoint does; the rest is
    account-wide and does not grow with the endpoints."""
    per_endpoint, account_wide, names = _split_series(_endpoints(count))
    assert SERIES_PER_ENDPOINT <= 15
    assert per_endpoint == SERIES_PER_ENDPOINT * count
    assert len(names) == 10
    _, account_wide_of_one, _ = _split_series(_endpoints(1))
    gpu_types = min(count, 3) + 1  # "GPU 0".."GPU 2" and the A6000
    assert account_wide == account_wide_of_one + gpu_types - 2


@pytest.mark.parametrize(
    ("target_s", "over"),
    [
        (15.0, 1),  # an edge: exact (9 of 10 at or under 15 s)
        (10.0, 7),  # an edge: 3 at or under 10 s
        (12.0, 7),  # between 10 and 15: counted above 10 (errs early)
        (0.5, 10),  # under the first edge: every one
        (400.0, 0),  # over the last edge: none
    ],
)
def test_cold_starts_over_the_target_are_counted_from_the_buckets(target_s: float, over: int) -> None:
    assert cold_starts_over(sample_status().endpoints[0], target_s) == over


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
@pytest.mark.parametrize("status", [sample_status(), None], ids=["status", "before-the-first-tick"])
def test_promtool_lints_the_exposition_clean(status: DaemonStatus | None) -> None:
    """What the daemon serves (the rendered status, data age, process metrics), and client_python's own."""
    publisher = MetricsPublisher(StatusRef(status))
    publisher.refresh()
    for text in (publisher.body().decode(), generate_latest(build_registry(StatusRef(status))).decode()):
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
    server = start_exporter(StatusRef(sample_status()), "127.0.0.1:0", clock=lambda: 1_764_000_200.0)
    try:
        port = server.server_port
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)  # httpx asks for gzip
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "runpod_watchdog_budget_eur 20.0" in response.text
        assert "process_resident_memory_bytes" in response.text
        plain = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content.split(b"# HELP process_")[0] == response.content.split(b"# HELP process_")[0]
    finally:
        server.shutdown()


def test_gzip_answer_is_one_member_of_the_plain_answer() -> None:
    """The status part is compressed once per render; each scrape appends its own lines to a copy of the
    compressor, and the result must still be a single gzip member (httpx and curl decode only one)."""
    publisher = MetricsPublisher(StatusRef(sample_status()), clock=lambda: 1_764_000_200.0)
    publisher.refresh()
    for _ in range(3):
        packed = publisher.body(gzip=True)
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        unpacked = decoder.decompress(packed)
        assert decoder.eof and not decoder.unused_data
        assert unpacked == gzip.decompress(packed)
        assert unpacked.split(b"# HELP process_")[0] == publisher.body().split(b"# HELP process_")[0]
        assert b"runpod_watchdog_data_age_seconds 200.0\n" in unpacked  # never read: since the start


def test_the_daemon_exporter_and_client_python_alone_export_the_same_series() -> None:
    """``StatusCollector`` (client_python's way, the benchmark's baseline) and the rendered bytes agree line
    for line, process metrics aside."""
    ref = StatusRef(_endpoints(5))
    publisher = MetricsPublisher(ref, clock=lambda: 1_764_000_300.0, with_process_metrics=False)
    publisher.refresh()
    ours = publisher.body().decode().splitlines()
    theirs = generate_latest(
        build_registry(ref, clock=lambda: 1_764_000_300.0, with_process_metrics=False)
    ).decode()
    assert sorted(ours) == sorted(theirs.splitlines())


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
    server = start_exporter(StatusRef(sample_status()), "127.0.0.1:0", certfile=str(cert), keyfile=str(key))
    try:
        port = server.server_port
        trust = ssl.create_default_context(cafile=str(cert))
        response = httpx.get(f"https://127.0.0.1:{port}/metrics", verify=trust, timeout=5)
        assert response.status_code == 200 and "runpod_watchdog_budget_eur 20.0" in response.text
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)  # plain HTTP is refused on a TLS port
        # and the refused plain client did not break the server
        again = httpx.get(f"https://127.0.0.1:{port}/metrics", verify=trust, timeout=5)
        assert again.status_code == 200
    finally:
        server.shutdown()


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
