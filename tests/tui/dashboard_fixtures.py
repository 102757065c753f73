"""Fixed, realistic days for the dashboard tests and snapshots, and a way to look at them by hand.

The main story (:func:`dashboard_status`): 20 June 2026, 12:00 UTC. The month is at 81 % of the 20 EUR
budget and the forecast overruns. ``hermes-llm`` (dry-run) has a job hung for 1h30 against a 10 min limit,
no execution timeout, and a pinger hammering it: the watchdog proposed cancelling the job (DRY-RUN). Its
alerts are in every delivery state the ledger knows: the 80 % alert still pending, the ping-flood alert
sent, the 50 % alert sent and acknowledged, a cost alert failed (Slack answered 503). ``whisper-asr``
(enforce) is healthy. Event texts are the daemon's own (``cancel_job (proposed): …``, Slack emoji, ``€1.45``).

The what-if of hermes (:func:`hermes_whatif`) is the ``whatif`` command's own computation on a synthetic
week of arrivals (60 requests a day of 6 s on an RTX A4000), so the snapshots need no ledger.

The other days: :func:`healthy_status` (nothing wrong, 45 %), :func:`blind_status` (RunPod unreadable),
:func:`long_status` (a 60-character name, 1,234,567 requests, 12,345.67 €, 99 workers, a cost per 1,000
from 12 requests, a month count lower than the last 24 hours'). The clock is fixed, so no wall-clock text
reaches a snapshot.

Run by hand (tmux recipe): ``.venv/bin/python tests/tui/dashboard_fixtures.py [hung|healthy|blind|long|
down]``; with ``--screenshot PATH`` it writes the 120x40 SVG used in the README instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tui.app import WatchdogApp, make_app
from tui.source import (
    DaySpend,
    EndpointHistory,
    HourSpend,
    KnownAlert,
    OpenJob,
    RecordingActions,
    StaticSource,
    WhatIfView,
)
from watchdog.config import Config, default_config
from watchdog.daemon.publish import status_targets
from watchdog.ledger import ConfigRow, WorkerSessionRow
from watchdog.reports.replay import Arrival
from watchdog.reports.whatif import SPEED_FACTORS, Inputs, whatif_options
from watchdog.status import BudgetView, DaemonStatus, EndpointView, EventView

DEFAULTS = default_config(env={})
"""The dashboard shows what the daemon was configured with: the shipped defaults."""

FIXED_NOW = 1_781_956_800.0
"""2026-06-20 12:00:00 UTC."""
MONTH_START = 1_780_272_000.0
"""2026-06-01 00:00:00 UTC."""
DAY = 86_400.0
USD_PER_EUR = 1.08

HUNG_ID = "ep-7xk2hermes"
HEALTHY_ID = "ep-3mq9whisper"
HUNG_JOB_ID = "8f2c1e7a-hung-u1"
ALERT_KEY = "budget:2026-06:0.8"
LONG_NAME = "translation-swahili-yoruba-hausa-whisper-large-v3-a6000-flex"
"""60 characters."""


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
        requests_24h=1180,
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
        requests_24h=640,
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


def budget_view(spent_eur: float, *, forecast_eur: float = 23.90, fixed_eur: float = 5.00) -> BudgetView:
    monthly = 20.0
    return BudgetView(
        month="2026-06",
        monthly_eur=monthly,
        usd_per_eur=USD_PER_EUR,
        spent_eur=spent_eur,
        fixed_eur=fixed_eur,
        variable_eur=spent_eur - fixed_eur,
        estimate_eur=spent_eur - fixed_eur,
        billed_eur=round((spent_eur - fixed_eur) * 0.97, 2),
        used_ratio=spent_eur / monthly,
        forecast_eur=forecast_eur,
        days_left=10.5,
        eur_per_day_allowed=max(0.0, (monthly - spent_eur) / 10.5),
        free_share_eur=round((spent_eur - fixed_eur) * DEFAULTS.budget.free_share, 2),
        free_share=DEFAULTS.budget.free_share,
        free_share_measured=False,
        thresholds=DEFAULTS.budget.alert_thresholds,
        thresholds_crossed=tuple(t for t in DEFAULTS.budget.alert_thresholds if spent_eur / monthly >= t),
        forecast_overrun=forecast_eur > monthly,
    )


def story_events() -> tuple[EventView, ...]:
    """The daemon's events as it writes them (newest first, like ``DaemonState.events``)."""
    return (
        EventView(
            at=FIXED_NOW - 600,
            kind="alert",
            endpoint_id=None,
            text=":rotating_light: Budget 80 % reached: 16.20 € of 20.00 € spent this month (forecast 23.90 €)",
            eur=16.20,
            state="pending",
        ),
        EventView(
            at=FIXED_NOW - 600,
            kind="action",
            endpoint_id=None,
            text="alert (applied): 80% of the €20.00 budget used (€16.20: €5.00 fixed, €11.20 GPU); forecast €23.90",
            state="applied",
        ),
        EventView(
            at=FIXED_NOW - 1200,
            kind="proposal",
            endpoint_id=HUNG_ID,
            text=(
                f"cancel_job (proposed): job {HUNG_JOB_ID} in progress for 1h20m (limit 10m);"
                " left alone it would bill up to €1.45 more"
            ),
            eur=1.45,
            state="proposed",
        ),
        EventView(
            at=FIXED_NOW - 1500,
            kind="alert",
            endpoint_id=None,
            text=(
                ":warning: suspicious traffic on ep-7xk2hermes: 203.0.113.7 pings 52/min"
                " (normal < 5/min): the worker never scales down"
            ),
            state="pending",
        ),
        EventView(
            at=FIXED_NOW - 1500,
            kind="traffic",
            endpoint_id=HUNG_ID,
            text="alert (applied): 203.0.113.7 pings 52/min (normal < 5/min): the worker never scales down",
            state="applied",
        ),
        EventView(
            at=FIXED_NOW - 3000,
            kind="action",
            endpoint_id=HEALTHY_ID,
            text="patch_config (verified): verified: endpoint shows idle_timeout_s=5",
            eur=0.42,
            state="verified",
        ),
        EventView(
            at=FIXED_NOW - 5400,
            kind="drift",
            endpoint_id=HUNG_ID,
            text=(
                "patch_config (proposed): execution_timeout_ms is None (allowed 600000): no execution"
                " timeout: one hung job bills until the month ends, €38.20 per month; setting it to 600000"
            ),
            eur=38.20,
            state="proposed",
        ),
    )


def dashboard_status(spent_eur: float = 16.20) -> DaemonStatus:
    return DaemonStatus(
        started_at=FIXED_NOW - 3 * 86400,
        last_tick_at=FIXED_NOW - 4,
        last_tick_ok=True,
        last_tick_duration_s=0.8,
        tick_interval_s=5.0,
        blind=False,
        blind_reason="",
        mode="enforce",
        budget=budget_view(spent_eur),
        endpoints=(hung_endpoint(), healthy_endpoint()),
        targets=status_targets(DEFAULTS),
        events=story_events(),
        saved_usd={"runaway_job|dry-run": 1.566, "config_drift|enforce": 0.4536},
        alerts_sent=2,
        alerts_pending=2,
        last_ok_at=FIXED_NOW - 4,
    )


def healthy_status() -> DaemonStatus:
    """A quiet day: 45 % of the budget, the forecast fits, nothing hung, nothing flagged."""
    hermes = dataclasses.replace(
        hung_endpoint(),
        mode="enforce",
        workers={"IDLE": 1},
        jobs={"completed": 412, "failed": 3, "inProgress": 0, "inQueue": 0, "retried": 0},
        oldest_work_s=None,
        pings_1h=0,
        config={**hung_endpoint().config, "execution_timeout_ms": 600_000},
        compliance=dict.fromkeys(hung_endpoint().compliance, True),
        suspicious=(),
        rate_per_min=tuple(3 + (minute * 7) % 5 for minute in range(60)),
        spend_month_eur=2.55,
        cost_per_1000_month_usd=1.25,
        cost_per_1000_24h_usd=1.3,
    )
    return dataclasses.replace(
        dashboard_status(),
        budget=budget_view(9.00, forecast_eur=14.50),
        endpoints=(hermes, dataclasses.replace(healthy_endpoint(), spend_month_eur=1.45)),
        events=(
            EventView(
                at=FIXED_NOW - 3000,
                kind="action",
                endpoint_id=HEALTHY_ID,
                text="patch_config (verified): verified: endpoint shows idle_timeout_s=5",
                eur=0.42,
                state="verified",
            ),
        ),
        saved_usd={"config_drift|enforce": 0.4536},
        alerts_sent=0,
        alerts_pending=0,
    )


def blind_status() -> DaemonStatus:
    """The daemon runs but cannot read RunPod: its ticks fail and it takes no action."""
    return dataclasses.replace(
        dashboard_status(),
        blind=True,
        blind_reason="RunPod answered 503 to 3 reads in a row",
        last_tick_ok=False,
        last_ok_at=FIXED_NOW - 190,
    )


def long_status() -> DaemonStatus:
    """Everything as large as it gets: a 60-character name, 1,234,567 requests, 12,345.67 €, 99 workers;
    beside it an endpoint with 12 requests (a cost per 1,000 is noise) and one whose month count restarted
    with the daemon (fewer this month than in the last 24 hours)."""
    big = dataclasses.replace(
        hung_endpoint(),
        id="ep-9zz9bigone",
        name=LONG_NAME,
        mode="enforce",
        workers={"RUNNING": 99, "IDLE": 3, "INITIALIZING": 2, "UNHEALTHY": 1},
        jobs={"completed": 1_234_567, "failed": 4_321, "inProgress": 99, "inQueue": 1_234, "retried": 12},
        oldest_work_s=12 * 3600.0,
        gpu_seconds_today=8_123_456.0,
        gpu_seconds_month=98_765_432.0,
        spend_month_eur=12_345.67,
        requests_month=1_234_567,
        requests_24h=45_678,
        requests_1h=2_345,
        pings_1h=123_456,
        cost_per_1000_month_usd=10.80,
        cost_per_1000_24h_usd=11.20,
        paused="brake",
        compliance={
            "execution_timeout": False,
            "idle_timeout": False,
            "max_workers": False,
            "min_standby": True,
        },
        rate_per_min=tuple(1_900 + (minute * 37) % 400 for minute in range(60)),
    )
    tiny = dataclasses.replace(
        healthy_endpoint(),
        id="ep-1aa1tiny",
        name="tiny-demo",
        requests_month=12,
        requests_24h=12,
        requests_1h=0,
        cost_per_1000_month_usd=7_673.0,
        cost_per_1000_24h_usd=7_673.0,
        spend_month_eur=85.26,
    )
    restarted = dataclasses.replace(
        healthy_endpoint(),
        id="ep-2bb2restart",
        name="restarted-count",
        requests_month=800,
        requests_24h=1_608,
        requests_1h=90,
        cost_per_1000_month_usd=9.0,
        cost_per_1000_24h_usd=2.1,
    )
    return dataclasses.replace(
        dashboard_status(),
        started_at=FIXED_NOW - 2 * 86400,
        budget=budget_view(12_380.12, forecast_eur=19_000.00),
        endpoints=(big, tiny, restarted),
    )


def long_spend() -> tuple[DaySpend, ...]:
    """The big endpoint's month (USD per day): 13,333.32 USD = 12,345.67 € over 20 days."""
    per_day = 12_345.67 * USD_PER_EUR / 20
    return tuple(DaySpend("ep-9zz9bigone", MONTH_START + day * DAY, per_day) for day in range(20))


def story_spend() -> tuple[DaySpend, ...]:
    """June so far per endpoint and UTC day (USD): hermes quiet until its job hung three days ago."""
    rows = []
    for day in range(20):
        at = MONTH_START + day * DAY
        hermes = 0.30 if day < 17 else {17: 1.20, 18: 1.50, 19: 1.866}[day]
        whisper = 0.12 if day < 19 else 0.15
        rows += [DaySpend(HUNG_ID, at, hermes), DaySpend(HEALTHY_ID, at, whisper)]
    return tuple(rows)


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
        spend_by_day=tuple(row for row in story_spend() if row.endpoint_id == HUNG_ID),
    )


def whatif_config() -> Config:
    """The shipped defaults at the fixtures' exchange rate (the status's ``usd_per_eur``)."""
    return dataclasses.replace(DEFAULTS, budget=dataclasses.replace(DEFAULTS.budget, usd_per_eur=USD_PER_EUR))


def hermes_inputs(requests_per_day: int = 60) -> Inputs:
    """A week of hermes's requests: bursts through the working day (deterministic), 6 s each."""
    start = FIXED_NOW - 7 * DAY
    arrivals = []
    for day in range(7):
        for index in range(requests_per_day):
            burst, within = divmod(index, 4)
            at = start + day * DAY + 7 * 3600 + burst * 1_900 + within * (3 + index % 5) + (day * 37) % 600
            arrivals.append(Arrival(at, 6.0, free=index % 10 < 3))
    prices = DEFAULTS.price_table
    return Inputs(
        endpoint_id=HUNG_ID,
        name="hermes-llm",
        start=start,
        end=FIXED_NOW,
        arrivals=tuple(sorted(arrivals, key=lambda a: a.at)),
        from_jobs=len(arrivals),
        from_counts=0,
        exec_source="recorded jobs",
        mean_exec_s=6.0,
        idle_timeout_s=5.0,
        workers_max=2,
        workers_min=0,
        scaler_delay_s=4.0,
        gpu=prices.lookup("NVIDIA RTX A4000"),
        cold_start_s=8.2,
        cold_start_source="measured",
        free_share=0.3,
        free_share_source="configured",
        recorded_usd=0.88,
        others_usd=0.95,
    )


@functools.cache
def hermes_whatif() -> WhatIfView:
    """Computed once per process (about 0.4 s of replays; the view is immutable, so it is shared)."""
    config = whatif_config()
    return WhatIfView(
        HUNG_ID,
        whatif_options(hermes_inputs(), config, speeds=SPEED_FACTORS),
        usd_per_eur=config.budget.usd_per_eur,
        monthly_eur=config.budget.monthly_eur,
    )


def known_alerts() -> tuple[KnownAlert, ...]:
    """The ledger's alerts, newest first, one in each delivery state."""
    return (
        KnownAlert(
            key=ALERT_KEY,
            text=":rotating_light: Budget 80 % reached: 16.20 € of 20.00 € spent this month (forecast 23.90 €)",
            state="pending",
            created_at=FIXED_NOW - 600,
            eur=16.20,
            kind="budget",
        ),
        KnownAlert(
            key="alert:suspicious_traffic:alert:ep-7xk2hermes:203.0.113.7:rate:2026-06-20",
            text=(
                ":warning: suspicious traffic on ep-7xk2hermes: 203.0.113.7 pings 52/min"
                " (normal < 5/min): the worker never scales down"
            ),
            state="sent",
            created_at=FIXED_NOW - 1500,
            kind="traffic",
            sent_at=FIXED_NOW - 1495,
            attempts=1,
        ),
        KnownAlert(
            key="cost1000:ep-7xk2hermes:2026-06-20",
            text=(
                ":money_with_wings: hermes-llm (ep-7xk2hermes) costs $6.10 per 1,000 requests over the"
                " last 24 h (limit $3.00): 6.66 € for 1,180 requests"
            ),
            state="failed",
            created_at=FIXED_NOW - 7200,
            eur=6.66,
            kind="cost",
            attempts=3,
            last_error="Slack answered 503",
        ),
        KnownAlert(
            key="budget:2026-06:0.5",
            text=":warning: Budget 50 % reached: 10.02 € of 20.00 € spent this month (forecast 19.70 €)",
            state="sent",
            created_at=FIXED_NOW - 3 * DAY - 1800,
            eur=10.02,
            kind="budget",
            sent_at=FIXED_NOW - 3 * DAY - 1795,
            acknowledged_at=FIXED_NOW - 3 * DAY + 600,
            attempts=1,
        ),
    )


def dashboard_source(status: DaemonStatus | None = None, **kwargs: object) -> StaticSource:
    return StaticSource(
        dashboard_status() if status is None else status,
        histories={HUNG_ID: hermes_history()},
        whatifs=kwargs.pop("whatifs", {HUNG_ID: hermes_whatif()}),  # type: ignore[arg-type]
        alerts=kwargs.pop("alerts", known_alerts()),  # type: ignore[arg-type]
        spend_by_day=kwargs.pop("spend_by_day", story_spend()),  # type: ignore[arg-type]
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


STATES = {
    "hung": dashboard_source,
    "healthy": lambda: dashboard_source(healthy_status(), alerts=()),
    "blind": lambda: dashboard_source(blind_status()),
    "long": lambda: dashboard_source(long_status(), spend_by_day=long_spend()),
    "down": lambda: dashboard_source(live=False, problem="the daemon is not running (no control socket)"),
}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--screenshot":
        asyncio.run(save_screenshot(Path(sys.argv[2])))
    else:
        dashboard_app(source=STATES[sys.argv[1] if len(sys.argv) > 1 else "hung"]()).run()
