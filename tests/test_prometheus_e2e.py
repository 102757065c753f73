"""The exporter fed by a real daemon: a golden ``/metrics`` file, promtool's lint, the issue's list of metrics,
scrapes while RunPod is down, the shipped example Prometheus config, and a real Prometheus server scraping
a real ``runpod-watchdog run`` process against the loopback simulator.

The golden test follows node_exporter's end-to-end test (``end-to-end-test.sh``): run the product against
fixtures (here: the simulator's ``hung-job`` scenario on a ManualClock, fixed seed), diff ``/metrics``
against ``tests/golden/metrics.txt``, skipping volatile series. To accept an intended change::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_prometheus_e2e.py -k golden

then review ``git diff tests/golden/metrics.txt``. Unit tests over a synthetic status live in test_metrics.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runpod_sim.app import DEFAULT_API_KEY, RateLimits
from runpod_sim.faults import Faults
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import HUNG_ENDPOINT_ID, STEADY_ENDPOINT_ID
from runpod_sim.serve import serve_in_thread
from sim_harness.wiring import GENEROUS_RUNTIME_LIMITS, daemon_against
from watchdog import __version__
from watchdog.clock import ManualClock, SystemClock, from_iso
from watchdog.config import RuleModes
from watchdog.control import ControlClient, ControlError
from watchdog.metrics import (
    COMPLIANCE_CHECKS,
    MODES,
    OUTCOMES,
    QUEUE_JOB_STATES,
    REQUEST_WINDOWS,
    RULE_ACTIONS,
    SERIES_PER_ENDPOINT,
    SPEND_SOURCES,
    WORKER_STATES,
    MetricsServer,
    start_exporter,
)
from watchdog.status import COLD_START_BUCKETS_S

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "metrics.txt"
RULES_FILE = REPO / "prometheus" / "runpod-watchdog.rules.yml"
EXAMPLE_CONFIG = REPO / "prometheus" / "prometheus.example.yml"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="PROMTOOL MISSING: promtool not found on PATH; install Debian's prometheus package (make test does)",
)
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="PROMETHEUS MISSING: the prometheus binary (and promtool) not found; install Debian's prometheus "
    "package (make test does)",
)

# ---------------------------------------------------------------------------------------------------------
# The fixed scenario behind the golden file

START = from_iso("2026-06-15T12:00:00Z")
SEED = 7
TICKS = 40
TICK_S = 5.0
"""40 ticks 5 s apart: long enough for the hung job to pass its 150 s limit and be cancelled."""

VOLATILE_PREFIXES = (
    "process_",  # the test process itself
    "python_",  # the interpreter's version
    "runpod_watchdog_started_timestamp_seconds",
    "runpod_watchdog_last_tick_timestamp_seconds",
    "runpod_watchdog_last_billing_timestamp_seconds",
    "runpod_watchdog_last_tick_duration_seconds",
    "runpod_watchdog_data_age_seconds",
    "runpod_watchdog_ledger_size_bytes",  # SQLite page allocation
)
"""Skipped in the golden comparison like node_exporter skips ``go_``/``process_``: timestamps, durations
and sizes that say nothing about the product's logic. Their presence is asserted separately."""


def _metric_name(line: str) -> str:
    if line.startswith("# "):
        parts = line.split(" ", 3)
        return parts[2] if len(parts) > 2 else ""
    return re.split(r"[{ ]", line, maxsplit=1)[0]


def normalise(text: str) -> str:
    """Drop volatile series (HELP and TYPE lines too) and pin the version label."""
    kept = [
        line for line in text.splitlines() if line and not _metric_name(line).startswith(VOLATILE_PREFIXES)
    ]
    return "\n".join(kept).replace(f'version="{__version__}"', 'version="VERSION"') + "\n"


async def scenario_scrape(tmp_path: Path, *, faults: Faults | None = None) -> str:
    """Run the fixed scenario and return what a real HTTP scrape of the daemon's exporter answers."""
    clock = ManualClock(START)
    access_log = tmp_path / "access.log"
    sim = build_simulator("hung-job", clock=clock, seed=SEED, access_log_path=str(access_log))
    # config_drift in dry-run: the hung job keeps running (no execution timeout is patched in), passes its
    # limit and is cancelled by runaway_job in enforce mode, so both modes show in the file.
    policy = {"rules": RuleModes(config_drift="dry-run")}
    async with daemon_against(sim, tmp_path, faults=faults, log_path=access_log, policy=policy) as daemon:
        for _ in range(TICKS):
            await daemon.tick()
            clock.advance(TICK_S)
        server = start_exporter(daemon.status_ref, "127.0.0.1:0", clock=daemon.clock.now)
        try:
            response = await asyncio.to_thread(
                httpx.get, f"http://127.0.0.1:{server.server_port}/metrics", timeout=5
            )
        finally:
            server.shutdown()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@pytest.fixture(scope="module")
def daemon_metrics(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The raw exposition of the fixed scenario (computed once for the module)."""
    return asyncio.run(scenario_scrape(tmp_path_factory.mktemp("scenario")))


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


# ---------------------------------------------------------------------------------------------------------
# 1. golden /metrics


def test_golden_metrics_of_a_fixed_scenario(daemon_metrics: str, tmp_path: Path) -> None:
    """Every non-volatile series the daemon exports for the fixed scenario, byte for byte."""
    got = normalise(daemon_metrics)
    again = normalise(asyncio.run(scenario_scrape(tmp_path)))
    assert got == again, "the scenario is not deterministic: two runs exported different metrics"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(got)
        print(
            f"\n*** UPDATE_GOLDEN=1: rewrote {GOLDEN.relative_to(REPO)} ({len(got.splitlines())} lines) ***"
        )
    assert GOLDEN.exists(), f"{GOLDEN} is missing: run with UPDATE_GOLDEN=1 to create it"
    expected = GOLDEN.read_text()
    if got != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                got.splitlines(keepends=True),
                "tests/golden/metrics.txt",
                "daemon /metrics",
            )
        )
        pytest.fail(f"/metrics differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{diff[:6000]}")


def test_the_scenario_exercises_what_the_golden_file_is_for(daemon_metrics: str) -> None:
    """Guards the golden file against a scenario that silently stopped doing anything."""
    text = daemon_metrics
    assert _value(text, "runpod_watchdog_blind") == 0
    assert _value(text, "runpod_watchdog_last_tick_ok") == 1
    # the hung job passed its 150 s limit and was cancelled, in enforce mode
    applied = sum(
        _value(
            text,
            "runpod_watchdog_actions_total",
            rule="runaway_job",
            action="cancel_job",
            mode="enforce",
            outcome=outcome,
        )
        for outcome in ("applied", "verified")
    )
    assert applied >= 1
    assert _value(text, "runpod_watchdog_saved_usd_total", rule="runaway_job", mode="enforce") > 0
    proposed = "runpod_watchdog_actions_total"
    labels = {"rule": "config_drift", "action": "patch_config", "mode": "dry-run", "outcome": "proposed"}
    assert _value(text, proposed, **labels) >= 1
    assert _value(text, "runpod_watchdog_cold_starts_total", endpoint=HUNG_ENDPOINT_ID) >= 1
    assert _value(text, "runpod_watchdog_month_spend_eur", source="estimate") > 0
    assert _value(text, "runpod_watchdog_data_age_seconds") == TICK_S  # measured on the daemon's clock


# ---------------------------------------------------------------------------------------------------------
# 2. promtool on the daemon's own output


@needs_promtool
def test_promtool_accepts_the_daemon_output(daemon_metrics: str) -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=daemon_metrics, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "process_resident_memory_bytes" in daemon_metrics  # the whole scrape was linted


# ---------------------------------------------------------------------------------------------------------
# 5. the issue's list of metrics, each present in the daemon's output with its labelled series at 0

ENDPOINTS = (HUNG_ENDPOINT_ID, STEADY_ENDPOINT_ID)


def _label_sets(family: Any, sample_name: str | None = None) -> set[tuple[tuple[str, str], ...]]:
    name = sample_name or family.name
    return {tuple(sorted(s.labels.items())) for s in family.samples if s.name == name}


def test_every_metric_the_issue_lists_is_exported(daemon_metrics: str) -> None:
    """The issue's list, as "the watchdog's own cost" reshaped it: per endpoint only what an operator
    alerts on (SERIES_PER_ENDPOINT series), the breakdowns account-wide."""
    families = _families(daemon_metrics)
    p = "runpod_watchdog_"

    def family(name: str, kind: str) -> Any:
        assert name in families, f"{name} missing from /metrics"
        assert families[name].type == kind, f"{name} is a {families[name].type}, not a {kind}"
        return families[name]

    def assert_grid(name: str, kind: str, sample: str | None = None, **axes: tuple[str, ...]) -> None:
        """Exactly every combination of the label values exists (at 0 when nothing happened)."""
        have = _label_sets(family(name, kind), sample)
        keys = sorted(axes)
        grid: list[dict[str, str]] = [{}]
        for key in keys:
            grid = [{**g, key: v} for g in grid for v in axes[key]]
        missing = [g for g in grid if tuple(sorted(g.items())) not in have]
        assert not missing, f"{name}: missing labelled series {missing[:5]}"
        assert len(have) == len(grid), f"{name}: series beyond the grid {sorted(have)[:5]}"

    # per endpoint: what an operator alerts on
    assert_grid(p + "workers", "gauge", endpoint=ENDPOINTS, state=tuple(s.lower() for s in WORKER_STATES))
    assert_grid(p + "jobs", "gauge", endpoint=ENDPOINTS, state=QUEUE_JOB_STATES)
    assert_grid(p + "cost_per_1000_requests_usd", "gauge", endpoint=ENDPOINTS, window=("24h",))
    for name in ("endpoint_month_spend_eur", "oldest_work_seconds", "endpoint_paused", "suspicious_traffic"):
        assert_grid(p + name, "gauge", endpoint=ENDPOINTS)
    assert_grid(p + "cold_starts", "counter", p + "cold_starts_total", endpoint=ENDPOINTS)
    assert_grid(
        p + "cold_starts_over_target", "counter", p + "cold_starts_over_target_total", endpoint=ENDPOINTS
    )
    assert _value(daemon_metrics, p + "cold_starts_total", endpoint=STEADY_ENDPOINT_ID) == 0
    per_endpoint = [
        s for f in families.values() for s in f.samples if s.labels.get("endpoint") == HUNG_ENDPOINT_ID
    ]
    assert len(per_endpoint) == SERIES_PER_ENDPOINT <= 15
    # account-wide: the seed's histogram and GPU seconds, requests and pings, policy compliance
    cold = family(p + "cold_start_seconds", "histogram")
    les = {s.labels["le"] for s in cold.samples if s.name.endswith("_bucket")}
    assert len(les) == len(COLD_START_BUCKETS_S) + 1 and "+Inf" in les and "15.0" in les
    assert all("endpoint" not in s.labels for s in cold.samples)
    assert _value(daemon_metrics, p + "cold_start_seconds_count") == sum(
        _value(daemon_metrics, p + "cold_starts_total", endpoint=e) for e in ENDPOINTS
    )
    gpu = family(p + "gpu_seconds", "counter")
    assert gpu.samples and all(set(s.labels) == {"gpu_type"} for s in gpu.samples)
    assert_grid(p + "requests", "gauge", window=REQUEST_WINDOWS)
    assert_grid(p + "pings", "gauge", window=("1h",))
    assert_grid(p + "endpoints_noncompliant", "gauge", check=COMPLIANCE_CHECKS)
    assert _value(daemon_metrics, p + "endpoints") == len(ENDPOINTS)
    for gone in ("work_limit_seconds", "endpoint_compliant"):
        assert p + gone not in families, f"{gone} is in the status and the ledger, not in /metrics"
    # budget, spend by source, ratio, forecast
    for name in (
        "budget_eur",
        "month_spend_counted_eur",
        "budget_used_ratio",
        "forecast_eur",
        "forecast_overrun",
    ):
        family(p + name, "gauge")
    assert_grid(p + "month_spend_eur", "gauge", source=SPEND_SOURCES)
    assert set(SPEND_SOURCES) == {"estimate", "billed", "fixed"}
    # actions by rule / action / mode / outcome, and money saved
    actions = _label_sets(family(p + "actions", "counter"), p + "actions_total")
    for rule, names in RULE_ACTIONS.items():
        for action in names:
            for mode in MODES:
                for outcome in OUTCOMES:
                    key = (("action", action), ("mode", mode), ("outcome", outcome), ("rule", rule))
                    assert key in actions, f"actions_total{dict(key)} missing"
    assert_grid(p + "saved_usd", "counter", p + "saved_usd_total", rule=tuple(RULE_ACTIONS), mode=MODES)
    # RunPod API calls by route and status
    calls = family(p + "api_calls", "counter")
    routes = {s.labels["route"] for s in calls.samples if s.name.endswith("_total")}
    assert {"GET /v2/serverless", "POST /graphql"} <= routes, routes
    assert all(s.labels["status"] for s in calls.samples)
    # alerts, staleness, blind, ledger
    family(p + "alerts_sent", "counter")
    family(p + "alerts_pending", "gauge")
    assert _value(daemon_metrics, p + "last_tick_timestamp_seconds") == START + (TICKS - 1) * TICK_S
    assert _value(daemon_metrics, p + "blind") in (0.0, 1.0)
    assert _value(daemon_metrics, p + "ledger_size_bytes") > 0
    assert _value(daemon_metrics, p + "started_timestamp_seconds") == START
    # every name carries the prefix (apart from the client library's process and platform collectors)
    foreign = [n for n in families if not n.startswith((p, "process_", "python_"))]
    assert not foreign, foreign


# ---------------------------------------------------------------------------------------------------------
# 4. a scrape never fails because RunPod is down


def _scrape(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)


def _scrape_current(server: MetricsServer) -> httpx.Response:
    """A scrape once the renderer thread has rendered the status just published (it lags by a render)."""
    assert server.publisher.wait_current(10)
    return _scrape(server.server_port)


async def test_scrapes_succeed_and_report_blind_while_runpod_is_down(tmp_path: Path) -> None:
    clock = ManualClock(START)
    faults = Faults()
    sim = build_simulator("hung-job", clock=clock, seed=SEED)
    async with daemon_against(sim, tmp_path, faults=faults) as daemon:
        server = start_exporter(daemon.status_ref, "127.0.0.1:0", clock=daemon.clock.now)
        port = server.server_port
        try:
            for _ in range(3):
                await daemon.tick()
                clock.advance(TICK_S)
            seen = (await asyncio.to_thread(_scrape_current, server)).text
            assert _value(seen, "runpod_watchdog_blind") == 0
            spent = _value(seen, "runpod_watchdog_month_spend_counted_eur")

            # RunPod goes down: every call on every host answers 503 (no retries in the test config)
            faults.fail_next(None, "*")
            for _ in range(3):
                await daemon.tick()
                clock.advance(TICK_S)
            response = await asyncio.to_thread(_scrape_current, server)
            assert response.status_code == 200
            text = response.text
            assert _value(text, "runpod_watchdog_blind") == 1
            assert _value(text, "runpod_watchdog_last_tick_ok") == 0
            assert _value(text, "runpod_watchdog_status_available") == 1
            # staleness is itself a metric: the data is as old as the last good tick
            assert _value(text, "runpod_watchdog_data_age_seconds") == 4 * TICK_S
            assert _value(text, "runpod_watchdog_month_spend_counted_eur") >= spent
            assert (
                _value(text, "runpod_watchdog_api_calls_total", route="GET /v2/serverless", status="503") >= 3
            )

            # RunPod hangs: a scrape during a tick stuck on RunPod answers at once (no RunPod at scrape time)
            faults.clear()
            faults.slow(2.0, "*")
            tick = asyncio.create_task(daemon.tick())
            await asyncio.sleep(0.3)
            assert not tick.done()
            began = time.monotonic()
            response = await asyncio.to_thread(_scrape, port)
            elapsed = time.monotonic() - began
            assert response.status_code == 200
            assert elapsed < 1.0, f"a scrape waited {elapsed:.2f} s for a tick stuck on RunPod"
            faults.clear()  # let the rest of the tick through quickly
            await tick
        finally:
            server.shutdown()


async def test_scrape_succeeds_when_runpod_was_never_reachable(tmp_path: Path) -> None:
    clock = ManualClock(START)
    faults = Faults()
    faults.fail_next(None, "*")
    sim = build_simulator("steady", clock=clock, seed=SEED)
    async with daemon_against(sim, tmp_path, faults=faults) as daemon:
        server = start_exporter(daemon.status_ref, "127.0.0.1:0", clock=daemon.clock.now)
        try:
            before = await asyncio.to_thread(_scrape, server.server_port)
            assert before.status_code == 200
            assert _value(before.text, "runpod_watchdog_status_available") == 0
            await daemon.tick()
            response = await asyncio.to_thread(_scrape_current, server)
        finally:
            server.shutdown()
    assert response.status_code == 200
    assert _value(response.text, "runpod_watchdog_blind") == 1
    if PROMTOOL is not None:
        lint = await asyncio.to_thread(
            subprocess.run,
            [PROMTOOL, "check", "metrics"],
            input=response.text,
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr


# ---------------------------------------------------------------------------------------------------------
# 6. the example Prometheus config shipped for users


@needs_promtool
def test_the_example_prometheus_config_loads(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(EXAMPLE_CONFIG)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    assert "rule files found" in result.stdout + result.stderr  # the shipped rules were loaded too
    text = EXAMPLE_CONFIG.read_text()
    # in step with the daemon's default listen address and with the rules' up{job="runpod-watchdog"}
    assert re.search(r'^\s*- job_name:\s*"?runpod-watchdog"?\s*$', text, re.M)
    assert "127.0.0.1:9877" in text
    assert "runpod-watchdog.rules.yml" in text
    assert 'up{job="runpod-watchdog"}' in RULES_FILE.read_text()
    # a broken copy is refused (the check is not vacuous)
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("scrape_configs:", "scrape_config:"))
    assert (
        subprocess.run(
            [PROMTOOL, "check", "config", str(broken)], capture_output=True, check=False
        ).returncode
        != 0
    )


# ---------------------------------------------------------------------------------------------------------
# 3. a real Prometheus scraping a real daemon process


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _daemon_command() -> list[str]:
    script = Path(sys.executable).parent / "runpod-watchdog"
    return [str(script)] if script.exists() else [sys.executable, "-m", "watchdog"]


def _daemon_config(tmp_path: Path, base_url: str, metrics_port: int) -> str:
    return f"""
[runpod]
graphql_url = "{base_url}/graphql"
rest_url = "{base_url}/v2"
runtime_url = "{base_url}/v2"
poll_interval_s = 1.0
billing_interval_s = 5.0
max_retries = 0
request_timeout_s = 2.0

[ledger]
path = "{tmp_path / "ledger.sqlite3"}"

[metrics]
enabled = true
listen = "127.0.0.1:{metrics_port}"

[control]
socket_path = "{tmp_path / "ctl.sock"}"
"""


def _prometheus_config(metrics_port: int) -> str:
    """JSON is YAML: the example's shape with a 1 s scrape, the shipped rules by absolute path."""
    return json.dumps(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(RULES_FILE)],
            "scrape_configs": [
                {
                    "job_name": "runpod-watchdog",
                    "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                }
            ],
        },
        indent=2,
    )


class _Prom:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        response = httpx.get(self.base + path, params=params, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def scalar(self, query: str) -> float | None:
        result = self.get("/api/v1/query", query=query)["result"]
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])


def _wait(what: str, timeout_s: float, probe: Any, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ControlError, OSError, AssertionError):
            last = probe()
            if last:
                return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


@contextlib.contextmanager
def _process(
    args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, always ended with SIGTERM then waited for (SIGKILL only if it hangs)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


@pytest.mark.slow
@needs_prometheus
def test_real_prometheus_scrapes_the_daemon_and_sees_its_spend(tmp_path: Path) -> None:
    assert PROMETHEUS is not None
    # budget-burn: about 75 % of the budget already billed this month, so the counted spend is more than
    # the fixed cost, and it holds still between the rare translation requests.
    sim = build_simulator("budget-burn", clock=SystemClock(), seed=SEED)
    limits = RateLimits(runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=1_000_000)
    metrics_port, prom_port = _free_port(), _free_port()
    config_path = tmp_path / "config.toml"
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(_prometheus_config(metrics_port))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_", "CREDENTIALS"))}
    env.pop("NOTIFY_SOCKET", None)
    env.update(RUNPOD_API_KEY=DEFAULT_API_KEY, PYTHONUNBUFFERED="1")
    control = ControlClient(tmp_path / "ctl.sock")
    prom = _Prom(prom_port)
    timings: dict[str, float] = {}

    with serve_in_thread(sim, rate_limits=limits) as base_url:
        config_path.write_text(_daemon_config(tmp_path, base_url, metrics_port))
        daemon_log = tmp_path / "daemon.log"
        prom_log = tmp_path / "prometheus.log"
        with _process([*_daemon_command(), "run", "--config", str(config_path)], daemon_log, env) as daemon:
            try:
                _wait("the daemon's first tick", 30, lambda: control.status() is not None)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- daemon log ---\n{daemon_log.read_text()[-3000:]}") from None
            metrics = _wait("the daemon's /metrics", 10, lambda: _scrape(metrics_port))
            assert metrics.status_code == 200
            assert _value(metrics.text, "runpod_watchdog_status_available") == 1
            began = time.monotonic()
            prom_args = [
                PROMETHEUS,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ]
            with _process(prom_args, prom_log) as prometheus:
                try:
                    _wait(
                        "Prometheus /-/ready",
                        20,
                        lambda: httpx.get(prom.base + "/-/ready", timeout=2).is_success,
                    )
                    timings["ready_s"] = time.monotonic() - began

                    def target_up() -> bool:
                        targets = prom.get("/api/v1/targets")["activeTargets"]
                        return any(
                            t["health"] == "up" and t["labels"]["job"] == "runpod-watchdog" for t in targets
                        )

                    # the first scrape takes about 6 s (discovery's 5 s throttle): allow 20
                    _wait("the target to be up", 20, target_up)
                    timings["first_scrape_s"] = time.monotonic() - began
                    _wait(
                        "the first sample",
                        20,
                        lambda: prom.scalar("runpod_watchdog_month_spend_counted_eur") is not None,
                    )
                    timings["first_data_s"] = time.monotonic() - began

                    # Prometheus's value equals the daemon's own status (control socket) once the spend holds
                    # still across a scrape: read the daemon, wait past a scrape, query, read the daemon again.
                    def matches() -> tuple[float, float, float] | None:
                        before = control.status()
                        time.sleep(1.3)
                        counted = prom.scalar("runpod_watchdog_month_spend_counted_eur")
                        fixed = prom.scalar('runpod_watchdog_month_spend_eur{source="fixed"}')
                        after = control.status()
                        if not (before and after and before.budget and after.budget):
                            return None
                        if (
                            counted is None
                            or fixed is None
                            or before.budget.spent_eur != after.budget.spent_eur
                        ):
                            return None
                        if not math.isclose(counted, after.budget.spent_eur, rel_tol=1e-12, abs_tol=1e-9):
                            return None
                        return counted, fixed, after.budget.fixed_eur

                    counted, fixed, status_fixed = _wait(
                        "Prometheus and the daemon to agree on the spend", 20, matches, 0.1
                    )
                    assert fixed == pytest.approx(status_fixed, abs=1e-9)
                    assert fixed == pytest.approx(10.0 / 1.16)  # the default fixed cost: 10 USD a month
                    assert counted > fixed + 1.0  # the month's billed GPU time is counted
                    timings["counted_eur"], timings["fixed_eur"] = counted, fixed
                    assert prom.scalar('up{job="runpod-watchdog"}') == 1

                    # the shipped rules are loaded and evaluate cleanly against real data
                    groups = prom.get("/api/v1/rules")["groups"]
                    rules = [rule for group in groups for rule in group["rules"]]
                    shipped = len(re.findall(r"^\s*- alert:", RULES_FILE.read_text(), re.M))
                    assert len(rules) == shipped > 0
                    _wait(
                        "every rule evaluated with health ok",
                        10,
                        lambda: all(
                            r["health"] == "ok"
                            for g in prom.get("/api/v1/rules")["groups"]
                            for r in g["rules"]
                        ),
                    )
                    budget_rule = next(r for r in rules if r["name"] == "RunPodBudget80Percent")
                    assert budget_rule["state"] == "inactive"  # 75 % spent, under the rule's 80 %

                    # RunPod goes down: scrapes keep succeeding and Prometheus sees the daemon blind
                    fault = {"add": [{"kind": "error", "pattern": "*", "count": None, "status": 503}]}
                    assert httpx.post(base_url + "/_sim/faults", json=fault, timeout=5).is_success
                    _wait(
                        "Prometheus to see the daemon blind",
                        20,
                        lambda: prom.scalar("runpod_watchdog_blind") == 1,
                    )
                    assert _scrape(metrics_port).status_code == 200
                    assert prom.scalar('up{job="runpod-watchdog"}') == 1
                    failed = prom.get("/api/v1/targets")["activeTargets"][0]
                    assert failed["health"] == "up" and not failed["lastError"], failed
                finally:
                    prometheus.send_signal(signal.SIGTERM)
                    try:
                        prom_rc = prometheus.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        prom_rc = None
                assert prom_rc == 0, prom_log.read_text()[-3000:]
            daemon.send_signal(signal.SIGTERM)
            daemon_rc = daemon.wait(timeout=30)
        assert daemon_rc == 0, daemon_log.read_text()[-3000:]
    print(
        "\nreal Prometheus timings: ready {ready_s:.2f} s, first scrape up {first_scrape_s:.2f} s, "
        "first sample {first_data_s:.2f} s; spend counted {counted_eur:.6f} EUR, fixed {fixed_eur:.6f} EUR "
        "(equal to the daemon's status)".format(**timings)
    )
