"""The simulator on a real loopback socket: ``serve_in_thread`` and ``runpod-watchdog simulate``."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from runpod_sim.engine import Simulator
from runpod_sim.registry import build_simulator
from runpod_sim.serve import (
    EXAMPLE_WORKER,
    external_worker_instructions,
    is_loopback_host,
    parse_listen,
    serve_in_thread,
    simulate_command,
    worker_env,
)
from tests.simulator.simulate_process import running_simulate, simulate_argv
from watchdog.clock import ManualClock, from_iso

CLI = [sys.executable, "-m", "watchdog"]


def test_serve_in_thread_over_real_loopback_http(sim: Simulator) -> None:
    with serve_in_thread(sim, long_poll_s=0.2) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        headers = {"Authorization": "Bearer sim-key-local-only"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=10) as http:
            listed = http.get("/v2/serverless").json()
            assert listed["endpoints"][0]["requestUrls"]["run"].startswith(base_url)
            job_id = http.post("/v2/ep-alpha/run", json={"input": {}}).json()["id"]
            assert http.get(f"/v2/ep-alpha/status/{job_id}").json()["status"] == "IN_QUEUE"
            graph = http.post("/graphql", json={"query": "{ myself { endpoints { id } } }"}).json()
            assert {ep["id"] for ep in graph["data"]["myself"]["endpoints"]} == {"ep-alpha", "ep-ext"}
            assert http.get("/v2/ep-ext/job-take/w1").status_code == 204
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/v2/serverless", timeout=2)


def test_serve_in_thread_refuses_non_loopback(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="loopback"), serve_in_thread(sim, host="0.0.0.0"):
        pass


def test_listen_parsing_and_loopback_check() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:8787") == ("::1", 8787)
    for bad in ("127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ":80"):
        with pytest.raises(ValueError):
            parse_listen(bad)
    assert is_loopback_host("127.0.0.1") and is_loopback_host("127.8.9.1") and is_loopback_host("::1")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("192.168.1.10")
    assert not is_loopback_host("example.org")


def test_simulate_refuses_0_0_0_0(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(
        listen="0.0.0.0:8787",
        scenario="steady",
        speed=1.0,
        api_key=None,
        access_log=None,
        list_scenarios=False,
        seed=0,
    )
    assert simulate_command(args) == 2
    assert "refusing to listen on '0.0.0.0'" in capsys.readouterr().err


def test_simulate_cli_refuses_wildcard_address() -> None:
    result = subprocess.run(
        [*CLI, "simulate", "--listen", "0.0.0.0:0"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


def test_simulate_cli_ready_line_and_clean_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    access_log = tmp_path / "access.jsonl"
    process = subprocess.Popen(
        [*CLI, "simulate", "--listen", "127.0.0.1:0", "--speed", "60", "--access-log", str(access_log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().strip()
        assert ready.startswith("runpod-simulator ready: http://127.0.0.1:"), (ready, process.stderr)
        base_url = ready.removeprefix("runpod-simulator ready: ")
        assert int(base_url.rsplit(":", 1)[1]) > 0
        assert "sim-key-local-only" in process.stdout.readline()
        listed = httpx.get(
            f"{base_url}/v2/serverless", headers={"Authorization": "Bearer sim-key-local-only"}, timeout=10
        )
        assert listed.status_code == 200 and "endpoints" in listed.json()
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_simulate_external_workers_prints_a_pasteable_worker_environment() -> None:
    """``simulate --scenario hung-job --external-workers`` prints, per endpoint served by real SDK workers,
    the exact environment as ``export`` lines a shell can take as they are ($ID and $RUNPOD_POD_ID are
    the SDK's placeholders: single-quoted), and the worker polling with it gets the queued job."""
    argv = simulate_argv("hung-job", external_workers=True, no_graphql=True, spend_rate=2.0)
    with running_simulate(argv, expect_workers=True) as run:
        assert list(run.exports) == ["ep-asr-hung"]  # the translation endpoint stays simulated
        assert "graphql: retired (POST /graphql answers 410 Gone)" in run.banner
        exports = "\n".join(run.exports["ep-asr-hung"])
        shell = subprocess.run(
            ["bash", "-c", f"{exports}\nenv -0"], capture_output=True, text=True, timeout=30, check=True
        )
        seen = dict(item.split("=", 1) for item in shell.stdout.split("\0") if item.startswith("RUNPOD_"))
        expected = worker_env(
            run.base_url, "ep-asr-hung", "local-worker-1", gpu="NVIDIA RTX A6000", ping_interval_ms=10_000
        )
        assert seen == expected
        assert seen["RUNPOD_WEBHOOK_GET_JOB"].endswith("/job-take/$ID?gpu=NVIDIA+RTX+A6000")

        # what the SDK does with it: replace $ID by RUNPOD_POD_ID, append &job_in_progress=0, raw key
        take = seen["RUNPOD_WEBHOOK_GET_JOB"].replace("$ID", seen["RUNPOD_POD_ID"]) + "&job_in_progress=0"
        worker = {"Authorization": seen["RUNPOD_AI_API_KEY"]}
        job = httpx.get(take, headers=worker, timeout=30)
        assert job.status_code == 200 and job.json()["input"]["hang"] is True
        api = {"Authorization": f"Bearer {seen['RUNPOD_AI_API_KEY']}"}
        listed = httpx.get(f"{run.base_url}/v2/serverless/ep-asr-hung/workers", headers=api, timeout=10)
        assert [(w["id"], w["status"]) for w in listed.json()["workers"]] == [("local-worker-1", "RUNNING")]
        limits = httpx.get(f"{run.base_url}/v2/account/limits", headers=api, timeout=10).json()
        assert limits["spendRate"]["limit"] == 2.0
        assert httpx.post(f"{run.base_url}/graphql", json={"query": "{ myself { id } }"}).status_code == 410


def test_simulate_without_external_endpoints_says_so() -> None:
    sim = build_simulator("demo", clock=ManualClock(from_iso("2026-06-24T14:00:00Z")))
    assert external_worker_instructions(sim, "http://127.0.0.1:1", scenario="demo") == [
        "external workers: scenario 'demo' has no endpoint served by external workers"
    ]
    steady = build_simulator(
        "steady", clock=ManualClock(from_iso("2026-06-24T14:00:00Z")), external_workers=True
    )
    lines = external_worker_instructions(steady, "http://127.0.0.1:1")
    assert "# endpoint ep-llm-mos: Translation LLM (A6000) (workersMax 1)" in lines
    assert any(EXAMPLE_WORKER in line for line in lines)


def test_simulate_refuses_a_negative_spend_rate(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(
        listen="127.0.0.1:0",
        scenario="steady",
        speed=1.0,
        api_key=None,
        access_log=None,
        list_scenarios=False,
        seed=0,
        spend_rate=-1.0,
    )
    assert simulate_command(args) == 2
    assert "--spend-rate" in capsys.readouterr().err
