"""The ledger's BI views (migration 0004): documented columns, figures against the simulator's ground truth,
and served by a real Datasette on 127.0.0.1 in immutable (read-only) mode, queried over HTTP."""

from __future__ import annotations

import contextlib
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reports.sim_month import SAVED_USD, SteadyMonth, steady_month
from watchdog.ledger import Ledger, LedgerReader
from watchdog.reports.views import SEED_INDICATORS, VIEW_DOCS, VIEWS, views_markdown


@pytest.fixture(scope="session")
def steady(tmp_path_factory: pytest.TempPathFactory) -> SteadyMonth:
    return steady_month(tmp_path_factory.getbasetemp() / "steady-month")


def _columns(db: sqlite3.Connection, view: str) -> tuple[str, ...]:
    return tuple(d[0] for d in db.execute(f"SELECT * FROM {view} LIMIT 0").description)


def test_every_view_has_exactly_its_documented_columns(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.sqlite3"):
        pass
    db = sqlite3.connect(f"file:{tmp_path / 'ledger.sqlite3'}?mode=ro", uri=True)
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    assert names == set(VIEWS)
    for view in VIEW_DOCS:
        assert _columns(db, view.name) == tuple(c for c, _ in view.columns), view.name
    assert set(SEED_INDICATORS) <= set(_columns(db, "daily_indicators"))
    assert "### `daily_indicators`" in views_markdown()


def test_the_indicators_add_up_to_the_simulators_month(steady: SteadyMonth) -> None:
    with LedgerReader.open(steady.ledger_path) as ledger:
        days = ledger._rows("SELECT * FROM daily_indicators WHERE month = '2026-06' ORDER BY day")
        (summary,) = ledger._rows("SELECT * FROM monthly_summary")
        (saving,) = ledger._rows("SELECT * FROM monthly_savings")
        hours = ledger._rows("SELECT basis, count(*) AS n FROM hourly_spend GROUP BY basis")
    assert len(days) == 30
    assert sum(d["requests"] for d in days) == summary["requests"] == len(steady.jobs)
    assert sum(d["cold_starts"] for d in days) == summary["cold_starts"] == len(steady.sessions)
    assert all(d["cold_start_seconds"] == pytest.approx(12.0) for d in days)
    for day in days:
        assert day["cost_per_1000_requests"] == pytest.approx(day["usd"] * 1000 / day["requests"])
    session_seconds = sum(s.initializing_s + s.busy_s + s.idle_s for s in steady.sessions)
    assert sum(d["gpu_seconds_total"] for d in days) == pytest.approx(session_seconds, rel=1e-6)
    assert summary["usd"] == pytest.approx(steady.billed_usd, rel=1e-3)
    assert summary["cost_per_1000_requests"] == pytest.approx(summary["usd"] * 1000 / len(steady.jobs))
    assert summary["saved_usd_enforce"] == pytest.approx(SAVED_USD) and summary["saved_usd_dry_run"] == 0
    assert (saving["rule"], saving["mode"], saving["actions"]) == ("idle_leak", "enforce", 1)
    basis = {h["basis"]: h["n"] for h in hours}
    assert basis["estimate"] <= 6 and basis["billed"] == summary["billed_hours"]


def test_rolled_up_days_still_count_the_bill(tmp_path: Path) -> None:
    """Retention folds hours into days; the views then count the day's bill (or its estimate)."""
    from watchdog.ledger import AccountingInterval, BilledSpend, SpendAccrual, TickRecord

    day = 86_400.0 * 20_000
    with Ledger.open(tmp_path / "l.sqlite3") as ledger:
        ledger.record_tick(
            TickRecord(
                started_at=day,
                finished_at=day,
                ok=True,
                accounting=AccountingInterval(day, day + 3600),
                estimates=(SpendAccrual("ep", day, 1.0, 100.0), SpendAccrual("other", day, 0.5, 50.0)),
                billed=(BilledSpend("ep", day, 1.25),),
            )
        )
        ledger.apply_retention(day + 40 * 86_400, 35, 400, checkpoint=False)
        rows = {r["endpoint_id"]: r for r in ledger._rows("SELECT * FROM daily_spend")}
    assert rows["ep"]["usd"] == 1.25 and rows["ep"]["basis"] == "billed" and rows["ep"]["drift_usd"] == 0.25
    assert rows["other"]["usd"] == 0.5 and rows["other"]["basis"] == "estimate"
    assert rows["other"]["billed_usd"] is None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _datasette(path: Path) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "datasette",
            "serve",
            "--immutable",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--setting",
            "max_returned_rows",
            "5000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/-/versions.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"datasette did not start: {output[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.skipif(
    shutil.which("datasette") is None and not Path(sys.executable).with_name("datasette").exists(),
    reason="datasette is not installed (the test extra installs it)",
)
def test_datasette_serves_every_view_read_only(steady: SteadyMonth, tmp_path: Path) -> None:
    copy = tmp_path / "ledger.sqlite3"
    shutil.copyfile(steady.ledger_path, copy)  # a closed ledger: no -wal left, safe to open immutable
    direct = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    with _datasette(copy) as base:
        for view in VIEWS:
            answer = httpx.get(
                f"{base}/ledger/{view}.json", params={"_shape": "objects", "_size": "max"}, timeout=10
            )
            assert answer.status_code == 200, (view, answer.text[:300])
            body = answer.json()
            expected = direct.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
            assert body["columns"] == list(_columns(direct, view)), view
            assert len(body["rows"]) == min(expected, 5000), view
        indicators = httpx.get(
            f"{base}/ledger.json",
            params={
                "sql": "SELECT sum(requests) AS r, sum(cold_starts) AS c FROM daily_indicators",
                "_shape": "array",
            },
            timeout=10,
        ).json()
        assert indicators == [{"r": len(steady.jobs), "c": len(steady.sessions)}]
        refused = httpx.post(f"{base}/ledger/-/query", data={"sql": "DELETE FROM alerts"}, timeout=10)
        assert refused.status_code in (400, 403, 404, 405)
        still = httpx.get(
            f"{base}/ledger.json",
            params={"sql": "SELECT count(*) AS n FROM alerts", "_shape": "array"},
            timeout=10,
        )
        assert still.json() == [{"n": 1}]
