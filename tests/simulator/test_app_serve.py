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
from runpod_sim.serve import is_loopback_host, parse_listen, serve_in_thread, simulate_command

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
