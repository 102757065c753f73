"""DaemonSource against a real control socket and a real ledger file; tui_command's exit codes.

The fallback is the point: with the daemon down, the dashboard must still show the last status the daemon
stored in the ledger, marked not live, and say why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
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
    assert tui_command(argparse.Namespace(config=str(config))) == 0
    (app,) = started
    assert isinstance(app.source, DaemonSource)
    assert app.source.ledger_path == tmp_path / "w.sqlite3"
    assert app.refresh_s == 2.5
