"""DaemonSource against a real control socket and a real ledger file; tui_command's exit codes (a bad
configuration, no terminal).

The fallback is the point: with the daemon down, the dashboard must still show the last status the daemon
stored in the ledger, marked not live, and say why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dashboard_fixtures import FIXED_NOW, HUNG_ID, dashboard_status

from tui.app import WatchdogApp, tui_command
from tui.source import ControlActions, DaemonSource, read_stored_status
from watchdog.control import ControlError, ControlServer
from watchdog.ledger import (
    STATUS_META_KEY,
    AccountingInterval,
    Alert,
    ConfigObservation,
    JobUpdate,
    Ledger,
    SpendAccrual,
    TickRecord,
    WorkerUpdate,
)
from watchdog.status import StatusRef

HOUR = 3600.0
TICK_START = FIXED_NOW - FIXED_NOW % HOUR
BIN = Path(sys.executable).with_name("runpod-watchdog")


def write_ledger(path: Path, *, with_status: bool = True) -> None:
    with Ledger.open(path) as ledger:
        ledger.record_tick(
            TickRecord(
                started_at=TICK_START,
                finished_at=TICK_START + 1,
                ok=True,
                endpoints=1,
                accounting=AccountingInterval(TICK_START - 60, TICK_START),
                estimates=(SpendAccrual(HUNG_ID, TICK_START - HOUR, 0.42, 900.0),),
                configs=(ConfigObservation(HUNG_ID, "hermes-llm", 0, 2, 5, None),),
                workers=(
                    WorkerUpdate("w-1", HUNG_ID, "RUNNING", "NVIDIA RTX A4000", running_s=60, usd=0.01),
                ),
                jobs=(
                    JobUpdate("job-old", HUNG_ID, "IN_PROGRESS", "status", started_at=TICK_START - 5000),
                    JobUpdate("job-new", HUNG_ID, "IN_PROGRESS", "status", started_at=TICK_START - 100),
                    JobUpdate("job-done", HUNG_ID, "COMPLETED", "status", finished_at=TICK_START - 10),
                ),
                alerts=(Alert("budget|2026-06|0.8", "budget", "warning", "budget 80 % crossed", 16.2),),
            )
        )
    if with_status:
        # What the daemon does every tick (its writer is not ours to call): meta "status" = DaemonStatus JSON.
        with sqlite3.connect(path) as connection:
            connection.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [STATUS_META_KEY, json.dumps(dashboard_status().to_dict())],
            )
        connection.close()


def test_daemon_down_and_no_ledger_says_both(tmp_path: Path) -> None:
    reading = DaemonSource(tmp_path / "w.sock", tmp_path / "ledger.sqlite3").read()
    assert reading.status is None
    assert not reading.live
    assert "not running" in (reading.problem or "")
    assert "no ledger at" in (reading.problem or "")


def test_daemon_down_falls_back_to_the_status_stored_in_the_ledger(tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.sqlite3"
    write_ledger(ledger_path)
    reading = DaemonSource(tmp_path / "w.sock", ledger_path).read()
    assert reading.status == dashboard_status()
    assert not reading.live
    assert "not running" in (reading.problem or "")


def test_ledger_without_a_stored_status_is_reported(tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.sqlite3"
    write_ledger(ledger_path, with_status=False)
    assert read_stored_status(ledger_path) is None
    reading = DaemonSource(tmp_path / "w.sock", ledger_path).read()
    assert reading.status is None
    assert "holds no status yet" in (reading.problem or "")


def test_endpoint_history_and_alerts_come_from_the_ledger(tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.sqlite3"
    write_ledger(ledger_path)
    source = DaemonSource(tmp_path / "w.sock", ledger_path)
    history = source.endpoint_history(HUNG_ID, FIXED_NOW)
    assert history.problem is None
    assert [job.job_id for job in history.open_jobs] == ["job-old", "job-new"]
    assert [(h.hour, h.estimate_usd, h.billed_usd) for h in history.spend_by_hour] == [
        (TICK_START - HOUR, 0.42, None)
    ]
    assert [row.name for row in history.config_history] == ["hermes-llm"]
    assert [worker.worker_id for worker in history.workers] == ["w-1"]
    assert [alert.key for alert in source.unacknowledged_alerts()] == ["budget|2026-06|0.8"]


def test_history_without_a_ledger_says_why(tmp_path: Path) -> None:
    source = DaemonSource(tmp_path / "w.sock", tmp_path / "missing.sqlite3")
    assert "no ledger at" in (source.endpoint_history(HUNG_ID, FIXED_NOW).problem or "")
    assert source.unacknowledged_alerts() == ()


async def test_live_daemon_status_and_commands_over_the_socket(tmp_path: Path) -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    async def on_command(kind: str, args: dict[str, Any]) -> dict[str, Any]:
        received.append((kind, args))
        if args.get("endpoint_id") == "nope":
            raise LookupError("no endpoint 'nope'")
        return {"message": f"{kind} queued as command 7"}

    socket_path = tmp_path / "w.sock"
    server = ControlServer(socket_path, StatusRef(dashboard_status()), on_command)
    await server.start()
    try:
        reading = await asyncio.to_thread(DaemonSource(socket_path, tmp_path / "none.sqlite3").read)
        assert reading.live and reading.problem is None
        assert reading.status == dashboard_status()
        actions = ControlActions(socket_path)
        reply = await asyncio.to_thread(actions.send, "pause", endpoint_id=HUNG_ID)
        assert reply == "pause queued as command 7"
        with pytest.raises(ControlError, match="no endpoint 'nope'"):
            await asyncio.to_thread(actions.send, "pause", endpoint_id="nope")
    finally:
        await server.close()
    assert received == [("pause", {"endpoint_id": HUNG_ID}), ("pause", {"endpoint_id": "nope"})]


def test_tui_command_rejects_a_bad_config_with_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    bad = Path(__file__).resolve().parents[1] / "configs" / "bad" / "negative_budget.toml"
    assert tui_command(argparse.Namespace(config=str(bad))) == 2
    assert "monthly_eur" in capsys.readouterr().err


def test_tui_command_wires_the_configured_paths_and_returns_the_app_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[ledger]\npath = "{tmp_path / "w.sqlite3"}"\n[tui]\nrefresh_s = 2.5\n')
    started: list[WatchdogApp] = []

    def fake_run(app: WatchdogApp) -> None:  # no terminal in tests: record the app and "quit"
        started.append(app)
        app._return_code = 0

    monkeypatch.setattr(WatchdogApp, "run", fake_run)
    monkeypatch.setattr("tui.app.is_terminal", lambda: True)  # pytest's stdin is not a terminal
    assert tui_command(argparse.Namespace(config=str(config))) == 0
    (app,) = started
    assert isinstance(app.source, DaemonSource)
    assert app.source.ledger_path == tmp_path / "w.sqlite3"
    assert app.refresh_s == 2.5


def test_ledger_view_reads_the_alerts_real_states_and_the_spend_by_day(tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.sqlite3"
    write_ledger(ledger_path)
    with Ledger.open(ledger_path) as ledger:
        ledger.record_tick(
            TickRecord(
                started_at=TICK_START + 5,
                finished_at=TICK_START + 6,
                ok=True,
                alerts=(
                    Alert("cost1000:ep:2026-06-20", "cost", "warning", ":money_with_wings: $7.67 per 1,000"),
                    Alert("budget|2026-06|0.5", "budget", "warning", ":warning: Budget 50 % reached", 10.0),
                    Alert("drift:ep", "drift", "critical", "execution timeout removed"),
                ),
            )
        )
        ledger.mark_alert_sent("budget|2026-06|0.8", TICK_START + 10)
        ledger.mark_alert_sent("budget|2026-06|0.5", TICK_START + 10)
        ledger.acknowledge_alert("budget|2026-06|0.5", TICK_START + 20)
        ledger.mark_alert_failed("cost1000:ep:2026-06-20", TICK_START + 10, "Slack answered 503")
    view = DaemonSource(tmp_path / "w.sock", ledger_path).ledger_view(FIXED_NOW)
    assert view.problem is None
    states = {alert.key: (alert.state, alert.acknowledged_at is not None) for alert in view.alerts}
    assert states == {
        "budget|2026-06|0.8": ("sent", False),
        "budget|2026-06|0.5": ("sent", True),
        "cost1000:ep:2026-06-20": ("failed", False),
        "drift:ep": ("pending", False),
    }
    failed = next(alert for alert in view.alerts if alert.state == "failed")
    assert failed.last_error == "Slack answered 503" and failed.attempts == 1
    day = TICK_START - TICK_START % 86_400
    assert [(row.endpoint_id, row.day, row.usd) for row in view.spend_by_day] == [(HUNG_ID, day, 0.42)]


def test_ledger_view_without_a_ledger_says_why(tmp_path: Path) -> None:
    view = DaemonSource(tmp_path / "w.sock", tmp_path / "missing.sqlite3").ledger_view(FIXED_NOW)
    assert view.alerts == () and "no ledger at" in (view.problem or "")


def test_tui_without_a_terminal_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    """``ssh host runpod-watchdog tui`` without -t, CI, a pipe: no hang, no escape codes."""
    config = tmp_path / "config.toml"
    config.write_text(f'[ledger]\npath = "{tmp_path / "w.sqlite3"}"\n')
    command = f"{BIN} tui --config {config} < /dev/null | cat; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False, env=_clean_env()
    )
    assert done.returncode == 2, done
    assert done.stdout == ""  # nothing, and no escape codes, reached the pipe
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("runpod-watchdog tui: not a terminal")
    assert "ssh -t" in lines[0]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_", "TEXTUAL"))}
