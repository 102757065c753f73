"""The daemon's money: the live estimate of each tick's interval, and the month to date.

**The live estimate** accrues ``(accounted_until, now]`` from the *previous* poll's workers (a worker seen
then was alive at least until it was seen), priced from the price table. An unobserved stretch (the daemon
was down or blind for longer than ``stale_after_s``) is accounted with no accruals, so the chain of
intervals in the ledger never has a hole or an overlap; RunPod's billing covers that stretch through the
per-hour max-of-two rule. A worker session that ended adds RunPod's expected per-session round-up.

**Seconds per worker state** (billed or not, priced as if billed) and the seconds of each hour the estimate
observed go to the ledger with the interval, so RunPod's hourly bill can be reconciled state by state
(:mod:`watchdog.reconcile`) after a restart as well.

**The month to date** is, per endpoint and hour, the larger of the estimate and RunPod's bill (which lags
by hours); the last 24 hours by endpoint feed the forecast and the cost per 1,000 requests.

Pure functions: the stored hours come in (the tick reads them from the ledger), the new accounting state
goes out; nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from watchdog.clock import DAY_S, hour_start
from watchdog.daemon.state import Accounting
from watchdog.ledger import (
    UNATTRIBUTED_ENDPOINT,
    AccountingInterval,
    BilledSpend,
    ObservedSeconds,
    SpendAccrual,
    StateSeconds,
    WorkerUpdate,
)
from watchdog.models import BillingReport, Worker
from watchdog.money import (
    ACCOUNT_WIDE,
    MonthToDate,
    accrue_interval,
    billed_by_hour,
    month_to_date,
    session_rounding_usd,
)
from watchdog.prices import PriceTable
from watchdog.vocabulary import SpendSource, WorkerStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Accrued:
    """What one tick's interval added to the live estimate."""

    interval: AccountingInterval | None
    """None on a brand-new ledger's first tick (the chain starts there)."""
    estimates: tuple[SpendAccrual, ...] = ()
    workers: tuple[WorkerUpdate, ...] = ()
    gpu_seconds: Mapping[tuple[str, str, float], float] = field(default_factory=dict)
    """(endpoint, GPU type, hour start) → billed GPU seconds in the interval."""
    state_seconds: tuple[StateSeconds, ...] = ()
    """GPU seconds per (endpoint, hour, worker state) in the interval, billed states or not, with their price
    as if billed: what RunPod's bill is reconciled against, state by state."""
    observed: tuple[ObservedSeconds, ...] = ()
    """Seconds of each hour the interval observed (none when it was not observed)."""


def accrue(
    accounting: Accounting,
    current: Mapping[str, tuple[Worker, ...]],
    *,
    now: float,
    prices: PriceTable,
    billed_states: frozenset[WorkerStatus],
    stale_after_s: float,
) -> tuple[Accounting, Accrued]:
    """The accounting state after this tick's poll of ``current`` workers, and what the interval accrued."""
    start = accounting.accounted_until
    previous = accounting.workers
    observed = accounting.workers_at is not None and start is not None and now - start <= stale_after_s
    following = Accounting(
        accounted_until=now if start is None else start,
        workers=dict(current),
        workers_at=now,
        restored_open_workers=accounting.restored_open_workers if observed else {},
    )
    if start is None or now <= start:
        seen = tuple(
            WorkerUpdate(w.id, endpoint_id, w.status.value, w.gpu_type_id)
            for endpoint_id, workers in current.items()
            for w in workers
        )
        return following, Accrued(None, (), seen)
    seconds = now - start
    spend: dict[tuple[str, float], list[float]] = defaultdict(lambda: [0.0, 0.0])
    gpu_seconds: dict[tuple[str, str, float], float] = defaultdict(float)
    by_state: dict[tuple[str, float, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    if observed:
        for endpoint_id, workers in previous.items():
            for accrual in accrue_interval(
                endpoint_id, workers, start=start, end=now, prices=prices, billed_states=billed_states
            ):
                state_cell = by_state[(endpoint_id, accrual.hour_start, accrual.state.value)]
                state_cell[0] += accrual.gpu_seconds
                state_cell[1] += accrual.gpu_seconds * prices.usd_per_s(
                    accrual.gpu_type_id, active=accrual.active
                )
                cell = spend[(endpoint_id, accrual.hour_start)]
                cell[0] += accrual.usd
                if accrual.state in billed_states:
                    cell[1] += accrual.gpu_seconds
                    gpu_key = (endpoint_id, accrual.gpu_type_id or "unknown", accrual.hour_start)
                    gpu_seconds[gpu_key] += accrual.gpu_seconds
    else:
        log.info(
            "accounting %.0f s with no live estimate (the daemon did not observe them; billing covers them)",
            seconds,
        )
    now_ids = {w.id for workers in current.values() for w in workers}
    before = {w.id: (e, w) for e, workers in previous.items() for w in workers} if observed else {}
    rows: list[WorkerUpdate] = []
    for endpoint_id, workers in current.items():
        for worker in workers:
            seen_before = before.get(worker.id)
            rows.append(
                _worker_update(
                    endpoint_id, worker, seen_before and seen_before[1], seconds, prices, billed_states, None
                )
            )
    for worker_id, (endpoint_id, worker) in before.items():
        if worker_id not in now_ids:
            rows.append(_worker_update(endpoint_id, worker, worker, seconds, prices, billed_states, now))
            if worker.status in billed_states:  # the session ended: RunPod rounded it up to the second
                # It ended somewhere in (start, now]; book it in the hour of the interval's middle.
                spend[(endpoint_id, hour_start((start + now) / 2))][0] += session_rounding_usd(worker, prices)
    if not observed:
        for worker_id, endpoint_id in sorted(accounting.restored_open_workers.items()):
            if worker_id not in now_ids:
                rows.append(WorkerUpdate(worker_id, endpoint_id, "STOPPED", ended_at=now))
    estimates = tuple(
        SpendAccrual(endpoint_id, hour, usd, gpu_s)
        for (endpoint_id, hour), (usd, gpu_s) in sorted(spend.items())
    )
    return (
        replace(following, accounted_until=now),
        Accrued(
            AccountingInterval(start, now),
            estimates,
            tuple(rows),
            dict(gpu_seconds),
            tuple(
                StateSeconds(endpoint_id, hour, state, gpu_s, usd)
                for (endpoint_id, hour, state), (gpu_s, usd) in sorted(by_state.items())
            ),
            _observed_hours(start, now) if observed else (),
        ),
    )


def _observed_hours(start: float, end: float) -> tuple[ObservedSeconds, ...]:
    """(start, end] cut at UTC hour boundaries: the seconds of each hour it covers."""
    pieces = []
    cursor = start
    while cursor < end:
        hour = hour_start(cursor)
        piece_end = min(end, hour + 3600.0)
        pieces.append(ObservedSeconds(hour, piece_end - cursor))
        cursor = piece_end
    return tuple(pieces)


def _worker_update(  # noqa: PLR0917
    endpoint_id: str,
    current: Worker,
    before: Worker | None,
    seconds: float,
    prices: PriceTable,
    billed_states: frozenset[WorkerStatus],
    ended_at: float | None,
) -> WorkerUpdate:
    if before is None:
        return WorkerUpdate(current.id, endpoint_id, current.status.value, current.gpu_type_id)
    usd = seconds * prices.usd_per_s(before.gpu_type_id) * before.gpu_count
    return WorkerUpdate(
        worker_id=current.id,
        endpoint_id=endpoint_id,
        status="STOPPED" if ended_at is not None else current.status.value,
        gpu_type_id=current.gpu_type_id,
        initializing_s=seconds if before.status == WorkerStatus.INITIALIZING else 0.0,
        running_s=seconds if before.status == WorkerStatus.RUNNING else 0.0,
        idle_s=seconds if before.status == WorkerStatus.IDLE else 0.0,
        usd=usd if before.status in billed_states else 0.0,
        ended_at=ended_at,
    )


def billed_rows(billing: BillingReport, month: float) -> tuple[BilledSpend, ...]:
    """RunPod's billing records → one row per endpoint and hour of this month (account-wide spend under the
    ledger's unattributed endpoint)."""
    return tuple(
        BilledSpend(UNATTRIBUTED_ENDPOINT if endpoint_id == ACCOUNT_WIDE else endpoint_id, hour, usd)
        for (endpoint_id, hour), usd in sorted(billed_by_hour(billing.records).items())
        if hour >= month
    )


@dataclass(frozen=True, slots=True)
class MonthMoney:
    """The month to date, and the last 24 hours (all endpoints, and by endpoint)."""

    month: MonthToDate
    last_24h_usd: float
    last_24h_by_endpoint: Mapping[str, float]

    def endpoint_month_usd(self, endpoint_id: str) -> float:
        return next((e.counted_usd for e in self.month.by_endpoint if e.endpoint_id == endpoint_id), 0.0)


def month_money(
    stored: Mapping[tuple[str, float, SpendSource], float],
    estimates: Sequence[SpendAccrual],
    billed: Sequence[BilledSpend],
    now: float,
) -> MonthMoney:
    """The month to date from the hours already in the ledger (``stored``: (endpoint, hour, source) → USD)
    plus this tick's new estimate and billed rows."""
    estimate_by_hour: dict[tuple[str, float], float] = defaultdict(float)
    billed_hours: dict[tuple[str, float], float] = {}
    for (endpoint_id, hour, source), usd in stored.items():
        if source == SpendSource.ESTIMATE:
            estimate_by_hour[(endpoint_id, hour)] += usd
        else:
            billed_hours[(endpoint_id, hour)] = usd
    for accrual in estimates:
        estimate_by_hour[(accrual.endpoint_id, accrual.hour)] += accrual.usd
    for bill in billed:
        billed_hours[(bill.endpoint_id, bill.hour)] = bill.usd
    mtd = month_to_date(estimate_by_hour, billed_hours, now)
    since = hour_start(now - DAY_S)
    per_endpoint: dict[str, float] = defaultdict(float)
    for key in set(estimate_by_hour) | set(billed_hours):
        if key[1] >= since:
            per_endpoint[key[0]] += max(estimate_by_hour.get(key, 0.0), billed_hours.get(key, 0.0))
    return MonthMoney(mtd, sum(per_endpoint.values()), dict(per_endpoint))
