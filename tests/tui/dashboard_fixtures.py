"""A fixed, realistic day for the dashboard tests and snapshots, and a way to look at it by hand.

The story: 20 June 2026, 12:00 UTC. The month is at 81 % of the 20 EUR budget and the forecast overruns.
``hermes-llm`` (dry-run) has a job hung for 1h30 against a 10 min limit, no execution timeout, and a pinger
hammering it: the watchdog proposed cancelling the job (DRY-RUN) and the 80 % alert is still pending
delivery. ``whisper-asr`` (enforce) is healthy. The clock is fixed, so no wall-clock text reaches a snapshot.

Run by hand (tmux recipe): ``.venv/bin/python tests/tui/dashboard_fixtures.py``; with ``--screenshot PATH``
it writes the 120x40 SVG used in the README instead.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tui.app import WatchdogApp, make_app
from tui.source import EndpointHistory, HourSpend, KnownAlert, OpenJob, RecordingActions, StaticSource
from watchdog.config import default_config
from watchdog.daemon.publish import status_targets
from watchdog.ledger import ConfigRow, WorkerSessionRow
from watchdog.status import BudgetView, DaemonStatus, EndpointView, EventView

DEFAULTS = default_config(env={})
"""The dashboard shows what the daemon was configured with: the shipped defaults."""

FIXED_NOW = 1_781_956_800.0
"""2026-06-20 12:00:00 UTC."""

HUNG_ID = "ep-7xk2hermes"
HEALTHY_ID = "ep-3mq9whisper"
HUNG_JOB_ID = "8f2c1e7a-hung-u1"
ALERT_KEY = "budget|2026-06|0.8"


def _hermes_rates() -> tuple[int, ...]:
    # Requests plus a keep-alive pinger that started 25 minutes ago.
    return tuple((3 + (minute * 7) % 5) + (52 if minute >= 35 else 0) for minute in range(60))


def _whisper_rates() -> tuple[int, ...]:
    return tuple((minute * 5) % 7 for minute in range(60))


def hung_endpoint() -> EndpointView:
    return EndpointView(
        id=HUNG_ID,
        name="hermes-llm",
        mode="dry-run",
        workers={"RUNNING": 1, "IDLE": 0},
        jobs={"completed": 412, "failed": 3, "inProgress": 1, "inQueue": 2, "retried": 0},
        oldest_work_s=5400.0,
        work_limit_s=600.0,
        cold_start_p50_s=8.2,
        cold_start_p95_s=19.5,
        cold_start_buckets=(0, 0, 4, 30, 38, 41, 42, 42, 42, 42, 42),
        cold_start_sum_s=410.0,
        cold_start_count=42,
        gpu_seconds_today=6120.0,
        gpu_seconds_month=31_450.0,
        gpu_seconds_by_type={"NVIDIA RTX A4000": 31_450.0},
        spend_month_eur=8.95,
        requests_month=2210,
        requests_24h=180,
        pings_1h=1300,
        requests_1h=210,
        cost_per_1000_month_usd=4.8,
        cost_per_1000_24h_usd=6.1,
        config={
            "workers_min": 0,
            "workers_max": 2,
            "workers_standby": 0,
            "idle_timeout_s": 5,
            "execution_timeout_ms": None,
        },
        compliance={
            "execution_timeout": False,
            "idle_timeout": True,
            "max_workers": True,
            "min_standby": True,
        },
        paused=None,
        suspicious=("203.0.113.7 pings 52/min",),
        rate_per_min=_hermes_rates(),
    )


def healthy_endpoint() -> EndpointView:
    return EndpointView(
        id=HEALTHY_ID,
        name="whisper-asr",
        mode="enforce",
        workers={"IDLE": 1},
        jobs={"completed": 1893, "failed": 2, "inProgress": 0, "inQueue": 0, "retried": 1},
        oldest_work_s=None,
        work_limit_s=600.0,
        cold_start_p50_s=4.1,
        cold_start_p95_s=9.8,
        cold_start_buckets=(2, 20, 61, 77, 80, 80, 80, 80, 80, 80, 80),
        cold_start_sum_s=380.0,
        cold_start_count=80,
        gpu_seconds_today=880.0,
        gpu_seconds_month=9_120.0,
        gpu_seconds_by_type={"NVIDIA RTX A4000": 9_120.0},
        spend_month_eur=2.25,
        requests_month=2050,
        requests_24h=140,
        pings_1h=0,
        requests_1h=180,
        cost_per_1000_month_usd=1.2,
        cost_per_1000_24h_usd=1.1,
        config={
            "workers_min": 0,
            "workers_max": 1,
            "workers_standby": 1,
            "idle_timeout_s": 5,
            "execution_timeout_ms": 600_000,
        },
        compliance={
            "execution_timeout": True,
            "idle_timeout": True,
            "max_workers": True,
            "min_standby": True,
        },
        rate_per_min=_whisper_rates(),
    )


def dashboard_status(spent_eur: float = 16.20) -> DaemonStatus:
    monthly = 20.0
    return DaemonStatus(
        started_at=FIXED_NOW - 3 * 86400,
        last_tick_at=FIXED_NOW - 4,
        last_tick_ok=True,
        last_tick_duration_s=0.8,
        tick_interval_s=5.0,
        blind=False,
        blind_reason="",
        mode="enforce",
        budget=BudgetView(
            month="2026-06",
            monthly_eur=monthly,
            usd_per_eur=1.08,
            spent_eur=spent_eur,
            fixed_eur=5.00,
            variable_eur=spent_eur - 5.00,
            estimate_eur=spent_eur - 5.00,
            billed_eur=10.85,
            used_ratio=spent_eur / monthly,
            forecast_eur=23.90,
            days_left=10.5,
            eur_per_day_allowed=(monthly - spent_eur) / 10.5,
            free_share_eur=1.30,
            free_share=DEFAULTS.budget.free_share,
            free_share_measured=False,
            thresholds=DEFAULTS.budget.alert_thresholds,
            thresholds_crossed=(0.5, 0.8),
            forecast_overrun=True,
        ),
        endpoints=(hung_endpoint(), healthy_endpoint()),
        targets=status_targets(DEFAULTS),
        events=(
            EventView(
                at=FIXED_NOW - 5400,
                kind="drift",
                endpoint_id=HUNG_ID,
                text="execution timeout removed (was 10m): a hung job would run until month end",
            ),
            EventView(
                at=FIXED_NOW - 3000,
                kind="action",
                endpoint_id=HEALTHY_ID,
                text="idle timeout 300 s → 5 s (policy max), verified",
                eur=0.42,
            ),
            EventView(
                at=FIXED_NOW - 1500,
                kind="traffic",
                endpoint_id=HUNG_ID,
                text="203.0.113.7 pings 52/min (normal < 5/min)",
            ),
            EventView(
                at=FIXED_NOW - 1200,
                kind="proposal",
                endpoint_id=HUNG_ID,
                text=f"would cancel job {HUNG_JOB_ID}: in progress 1h20m, limit 10m",
                eur=1.45,
            ),
            EventView(
                at=FIXED_NOW - 600,
                kind="alert",
                endpoint_id=None,
                text="budget 80 % crossed: 16.20 € of 20.00 €, forecast 23.90 €",
                eur=16.20,
                state="pending",
            ),
        ),
        alerts_sent=3,
        alerts_pending=1,
    )


def hermes_history() -> EndpointHistory:
    base = FIXED_NOW - 6 * 3600
    return EndpointHistory(
        endpoint_id=HUNG_ID,
        spend_by_hour=tuple(
            HourSpend(base + hour * 3600, 0.25 + 0.18 * hour, 0.25 + 0.18 * hour if hour < 3 else None)
            for hour in range(6)
        ),
        config_history=(
            ConfigRow(
                id=1,
                endpoint_id=HUNG_ID,
                observed_at=FIXED_NOW - 10 * 86400,
                name="hermes-llm",
                workers_min=0,
                workers_max=2,
                workers_standby=0,
                idle_timeout_s=5,
                execution_timeout_ms=600_000,
                gpu_pools=("AMPERE_16",),
                scaler_type="QUEUE_DELAY",
                scaler_value=4,
                raw={},
                changed_fields=None,
            ),
            ConfigRow(
                id=7,
                endpoint_id=HUNG_ID,
                observed_at=FIXED_NOW - 5400,
                name="hermes-llm",
                workers_min=0,
                workers_max=2,
                workers_standby=0,
                idle_timeout_s=5,
                execution_timeout_ms=None,
                gpu_pools=("AMPERE_16",),
                scaler_type="QUEUE_DELAY",
                scaler_value=4,
                raw={},
                changed_fields=("execution_timeout_ms",),
            ),
        ),
        workers=(
            WorkerSessionRow(
                worker_id="w-9d1",
                endpoint_id=HUNG_ID,
                gpu_type_id="NVIDIA RTX A4000",
                first_seen_at=FIXED_NOW - 5500,
                last_seen_at=FIXED_NOW - 4,
                ended_at=None,
                last_status="RUNNING",
                initializing_s=9.0,
                running_s=5480.0,
                idle_s=0.0,
                estimated_usd=0.52,
            ),
        ),
        open_jobs=(
            OpenJob(HUNG_JOB_ID, HUNG_ID, "IN_PROGRESS", FIXED_NOW - 5450, FIXED_NOW - 5400),
            OpenJob("c41d-queued-u1", HUNG_ID, "IN_QUEUE", FIXED_NOW - 300, None),
        ),
    )


def known_alerts() -> tuple[KnownAlert, ...]:
    return (
        KnownAlert(
            key=ALERT_KEY,
            text="budget 80 % crossed: 16.20 € of 20.00 €",
            state="pending",
            created_at=FIXED_NOW - 600,
            eur=16.20,
        ),
    )


def dashboard_source(status: DaemonStatus | None = None, **kwargs: object) -> StaticSource:
    return StaticSource(
        dashboard_status() if status is None else status,
        histories={HUNG_ID: hermes_history()},
        alerts=known_alerts(),
        **kwargs,  # type: ignore[arg-type]
    )


def dashboard_app(
    source: object | None = None, actions: RecordingActions | None = None, *, spent_eur: float = 16.20
) -> WatchdogApp:
    return make_app(
        source if source is not None else dashboard_source(dashboard_status(spent_eur)),  # type: ignore[arg-type]
        actions if actions is not None else RecordingActions(),
        refresh_s=1.0,
        stale_after_s=15.0,
        clock=lambda: FIXED_NOW,
    )


async def save_screenshot(path: Path, size: tuple[int, int] = (120, 40)) -> None:
    app = dashboard_app()
    async with app.run_test(size=size) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.save_screenshot(filename=path.name, path=str(path.parent))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--screenshot":
        asyncio.run(save_screenshot(Path(sys.argv[2])))
    else:
        dashboard_app().run()
