"""What would the same requests have cost with other settings? (``runpod-watchdog whatif``)

The last N days of recorded arrivals of one endpoint are replayed (:mod:`watchdog.reports.replay`) against
candidate settings, one change at a time and then in combination:

- **idle timeout**, 1 s to minutes: how long a worker waits for the next request before it stops;
- **active workers** 0 or 1 (always on, billed at the active price);
- **GPU type**, every type of the price table, smallest first (the seed's rule: quantise, try the smallest
  GPU, move up only if latency explodes). Execution times scale by :data:`SPEED_FACTORS` (an assumption,
  see there) or the user's ``--speed GPU=FACTOR``;
- **a shorter cold start** (FlashBoot), only as the user's assumption (``--cold-start-s``);
- **free requests held for batches** at fixed times of the day (``--batch-times``): the free share of the
  requests waits for the next batch and is then served back to back by one warm worker.

Arrivals are the ledger's jobs (sent = start − queue delay; execution time as RunPod reported it); minutes
whose traffic count exceeds the jobs recorded in them get the missing requests spread evenly over the
minute, with the mean measured execution time. Each option's **added wait** is, per request served at once,
the time from sending to the start of execution plus any slower execution on another GPU; its p50 and p95
are shown, and held free requests are shown apart (their wait is the policy). The cheapest combination
that fits the monthly budget (with the fixed costs and the other endpoints at their measured rate) within
``--max-wait-p95`` (default: today's p95) is searched branch-and-bound (cheapest execution bound first).

:func:`whatif_options` returns every figure as data and :func:`whatif_text` only words it, so the command
and the dashboard's endpoint screen (which draws the same options as a table) never disagree.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from watchdog.clock import month_start
from watchdog.config import Config
from watchdog.money import MIN_TIERED_REQUESTS, measured_free_share, usd_to_eur
from watchdog.prices import GpuPrice, PriceTable
from watchdog.reports.month import month_label
from watchdog.reports.providers import find_gpu
from watchdog.reports.replay import (
    Arrival,
    EndpointModel,
    ReplayResult,
    hold_for_batches,
    nearest_rank,
    replay,
)
from watchdog.reports.source import ReportLedger

DAY_S = 86_400.0
MONTH_S = 30 * DAY_S
"""A month for "€ per month": 30 days (RunPod's own unit for active workers)."""
IDLE_TIMEOUTS_S: tuple[float, ...] = (1, 2, 5, 10, 30, 60, 120, 300)
"""Idle timeouts tried (RunPod allows 1-3600 s); the endpoint's own is added."""
MIN_ARRIVALS = 20
"""Fewer recorded requests than this and a p95 is just the slowest one: the dashboard says so instead of
showing figures (the command replays whatever there is)."""
DEFAULT_COLD_START_S = 15.0
"""Cold start assumed when the ledger measured none and none is given: the team's target ("sous quinze
secondes sur A6000")."""

REFERENCE_GPU = "NVIDIA RTX A6000"
MEMORY_BANDWIDTH_GBPS: Mapping[str, float] = {
    "NVIDIA RTX A4000": 448,
    "NVIDIA RTX A4500": 640,
    "NVIDIA RTX A5000": 768,
    "NVIDIA L4": 300,
    "NVIDIA GeForce RTX 4090": 1008,
    "NVIDIA RTX A6000": 768,
    "NVIDIA A40": 696,
    "NVIDIA L40S": 864,
    "NVIDIA A100 80GB PCIe": 1935,
    "NVIDIA H100 80GB HBM3": 3350,
    "NVIDIA H200": 4800,
}
"""Memory bandwidth per GPU type, GB/s (the vendors' data sheets)."""
SPEED_FACTORS: Mapping[str, float] = {
    gpu: round(MEMORY_BANDWIDTH_GBPS[REFERENCE_GPU] / bandwidth, 2)
    for gpu, bandwidth in MEMORY_BANDWIDTH_GBPS.items()
}
"""THE ASSUMPTION behind the GPU options, in one place: a request's execution time on a GPU type relative to
the RTX A6000 (1.0 = as fast; 1.71 = takes 1.71× as long). Generating tokens with a quantised 7B model is
memory-bound, so time scales with 1 / memory bandwidth. It is not a measurement: measure the model on the
GPU and pass ``--speed "NVIDIA RTX A4000=1.6"`` (repeatable), which wins. A type with no factor is not
tried. Every type listed has at least 16 GB, enough for a 7B model in INT4 (~4 GB, the seed's figure)."""


class WhatIfError(ValueError):
    """Bad usage or nothing to replay (exit 2)."""


class NoExecutionTime(WhatIfError):
    """Nothing says how long a request runs: no job timing and no worker seconds (``--exec-s`` fixes it)."""


def parse_speeds(items: Sequence[str], prices: PriceTable) -> dict[str, float]:
    """``["NVIDIA RTX A4000=1.6", "L4=2.4"]`` over :data:`SPEED_FACTORS` (names as ``compare --gpu``)."""
    speeds = dict(SPEED_FACTORS)
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            factor = float(value)
        except ValueError:
            factor = math.nan
        if not sep or not name.strip() or not math.isfinite(factor) or factor <= 0:
            raise WhatIfError(f"--speed {item!r}: expected GPU=FACTOR with a factor > 0 (e.g. 'A4000=1.6')")
        try:
            speeds[find_gpu(prices, name.strip()).gpu_type_id] = factor
        except ValueError as exc:
            raise WhatIfError(f"--speed {item!r}: {exc}") from None
    return speeds


def parse_batch_times(text: str) -> tuple[float, ...]:
    """``"00:00,06:00,12:00,18:00"`` → seconds after midnight (UTC); ``""`` → no batching."""
    times = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", part)
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise WhatIfError(f"--batch-times: {part!r} is not a time HH:MM")
        times.append(int(match[1]) * 3600.0 + int(match[2]) * 60.0)
    return tuple(sorted(set(times)))


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the replays start from: the recorded arrivals and today's settings."""

    endpoint_id: str
    name: str
    start: float
    end: float
    arrivals: tuple[Arrival, ...]
    from_jobs: int
    from_counts: int
    exec_source: str
    mean_exec_s: float
    idle_timeout_s: float
    workers_max: int
    workers_min: int
    scaler_delay_s: float
    gpu: GpuPrice
    cold_start_s: float
    cold_start_source: str
    free_share: float
    free_share_source: str
    recorded_usd: float
    """What the ledger counted for this endpoint over the window (bill, else estimate)."""
    others_usd: float
    """The other endpoints' spend over the window."""

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY_S

    def per_month(self, usd: float) -> float:
        return usd * MONTH_S / (self.end - self.start)


@dataclass(frozen=True, slots=True)
class Candidate:
    idle_timeout_s: float
    workers_min: int
    gpu: GpuPrice
    speed: float
    """Execution time relative to today's GPU."""
    cold_start_s: float
    batch: bool

    def describe(self, today: Candidate) -> list[str]:
        changes = []
        if self.idle_timeout_s != today.idle_timeout_s:
            changes.append(f"idle timeout {today.idle_timeout_s:g} s → {self.idle_timeout_s:g} s")
        if self.workers_min != today.workers_min:
            changes.append(f"active workers {today.workers_min} → {self.workers_min}")
        if self.gpu.gpu_type_id != today.gpu.gpu_type_id:
            changes.append(
                f"GPU {_short(today.gpu)} → {_short(self.gpu)} (execution × {self.speed:.2f}, assumed)"
            )
        if self.cold_start_s != today.cold_start_s:
            changes.append(
                f"cold start {today.cold_start_s:.1f} s → {self.cold_start_s:.1f} s (FlashBoot, assumed)"
            )
        if self.batch and not today.batch:
            changes.append("free requests held for the fixed batch times")
        return changes


@dataclass(frozen=True, slots=True)
class Outcome:
    candidate: Candidate
    usd_month: float
    wait_p50_s: float | None
    wait_p95_s: float | None
    held_mean_s: float | None
    """Mean wait of the free requests held for a batch (None: nothing held)."""
    cold_starts_month: float
    unserved: int


def _short(gpu: GpuPrice) -> str:
    return gpu.gpu_type_id.removeprefix("NVIDIA ").removeprefix("GeForce ")


def _resolve_endpoint(ledger: ReportLedger, endpoint: str | None) -> tuple[str, str]:
    configs = ledger.latest_configs()
    known = ledger.endpoint_ids()
    known = [e for e in known if e]
    if endpoint is None:
        if len(known) == 1:
            endpoint_id = known[0]
            return endpoint_id, configs[endpoint_id].name if endpoint_id in configs else ""
        raise WhatIfError(
            "name the endpoint to replay: " + (", ".join(known) if known else "the ledger knows no endpoint")
        )
    for endpoint_id in known:
        name = configs[endpoint_id].name if endpoint_id in configs else ""
        if endpoint in (endpoint_id, name):
            return endpoint_id, name
    raise WhatIfError(f"no endpoint {endpoint!r} in the ledger (known: {', '.join(known) or 'none'})")


def _spread_free(arrivals: list[Arrival], share: float) -> list[Arrival]:
    """Mark ``share`` of the arrivals free, evenly through time (deterministic: every 1/share-th one)."""
    marked = []
    for index, arrival in enumerate(arrivals):
        free = math.floor((index + 1) * share + 1e-9) > math.floor(index * share + 1e-9)
        marked.append(replace(arrival, free=free))
    return marked


def load_inputs(
    ledger: ReportLedger,
    config: Config,
    *,
    endpoint: str | None,
    days: float,
    now: float,
    baseline_cold_start_s: float | None = None,
    exec_s: float | None = None,
) -> Inputs:
    """The arrivals and settings to replay, from one snapshot of the ledger."""
    end = now
    window_start = end - days * DAY_S
    with ledger.consistent():
        endpoint_id, name = _resolve_endpoint(ledger, endpoint)
        jobs = ledger.jobs(window_start - DAY_S, end, endpoint_id)
        minutes = ledger.request_minutes(window_start, end, endpoint_id)
        sessions = ledger.sessions(window_start, end, endpoint_id)
        hours = ledger.hourly_spend(window_start - window_start % 3600, end)
        configs = ledger.latest_configs()
        first_tick = ledger.first_tick_at(window_start)
        tier_month, free, tiered = ledger.tiers()
    timed = [
        (j.arrived_at, j.execution_ms / 1000.0)
        for j in jobs
        if j.arrived_at is not None and j.execution_ms is not None and window_start <= j.arrived_at < end
    ]
    measured_exec = [seconds for _, seconds in timed if seconds > 0]
    if exec_s is not None:
        fallback_exec, exec_source = exec_s, "given (--exec-s) where the ledger has no job timing"
    elif measured_exec:
        fallback_exec = sum(measured_exec) / len(measured_exec)
        exec_source = f"RunPod's execution time of {len(measured_exec):,} recorded jobs"
    else:
        total_requests = sum(minutes.values())
        running = sum(s.running_s for s in sessions)
        if not total_requests or running <= 0:
            raise NoExecutionTime(
                f"no execution time recorded for {endpoint_id} in the last {days:g} days: give --exec-s "
                "SECONDS"
            )
        fallback_exec = running / total_requests
        exec_source = "worker running seconds ÷ requests (no job timing recorded)"
    arrivals = [Arrival(at, seconds) for at, seconds in timed]
    per_minute = Counter(at - at % 60 for at, _ in timed)
    from_counts = 0
    for minute, count in sorted(minutes.items()):
        missing = count - per_minute.get(minute, 0)
        for index in range(max(0, missing)):
            arrivals.append(Arrival(minute + (index + 0.5) * 60.0 / missing, fallback_exec))
            from_counts += 1
    if not arrivals:
        raise WhatIfError(f"no request recorded for {endpoint_id} in the last {days:g} days")
    arrivals.sort(key=lambda a: a.at)

    months = {month_label(month_start(end - 1)), month_label(month_start(window_start))}
    if tier_month in months and tiered >= MIN_TIERED_REQUESTS:
        share, _ = measured_free_share(free, tiered, config.budget.free_share)
        share_source = f"measured from the logs' tier ({free:,} of {tiered:,} this month)"
    else:
        share, share_source = config.budget.free_share, "configured (budget.free_share)"
    arrivals = _spread_free(arrivals, share)

    row = configs.get(endpoint_id)
    prices = config.price_table
    gpu_counts = Counter(s.gpu_type_id for s in sessions if s.gpu_type_id and prices.knows(s.gpu_type_id))
    if gpu_counts:
        gpu = prices.lookup(gpu_counts.most_common(1)[0][0])
    elif row is not None and any(
        g.pool in row.gpu_pools or g.gpu_type_id in row.gpu_pools for g in prices.gpus
    ):
        gpu = max(
            (g for g in prices.gpus if g.pool in row.gpu_pools or g.gpu_type_id in row.gpu_pools),
            key=lambda g: g.flex_usd_per_s,
        )
    else:
        gpu = prices.lookup(REFERENCE_GPU)

    samples = [s.cold_start_seconds for s in sessions if s.cold_start_seconds > 0]
    delays = sorted(j.delay_ms / 1000.0 for j in jobs if j.delay_ms is not None and j.delay_ms >= 1000)
    if baseline_cold_start_s is not None:
        cold, cold_source = baseline_cold_start_s, "given (--baseline-cold-start-s)"
    elif samples:
        cold = sum(samples) / len(samples)
        cold_source = f"measured: mean of {len(samples):,} worker starts"
    elif delays:
        cold = delays[len(delays) // 2]
        cold_source = f"measured: median queue delay of {len(delays):,} jobs that waited"
    else:
        cold, cold_source = DEFAULT_COLD_START_S, "assumed (the team's 15 s target; nothing measured)"

    observed = [first_tick, *(a.at for a in arrivals[:1]), *(s.started_at for s in sessions[:1])]
    start = max(window_start, min(t for t in observed if t is not None))
    start = min(start, arrivals[0].at)
    spend: dict[bool, float] = defaultdict(float)
    for hour in hours:
        if start - start % 3600 <= hour["hour"] < end:
            spend[hour["endpoint_id"] == endpoint_id] += hour["usd"]
    return Inputs(
        endpoint_id=endpoint_id,
        name=name,
        start=start,
        end=end,
        arrivals=tuple(arrivals),
        from_jobs=len(timed),
        from_counts=from_counts,
        exec_source=exec_source,
        mean_exec_s=sum(a.exec_s for a in arrivals) / len(arrivals),
        idle_timeout_s=float(row.idle_timeout_s) if row else 5.0,
        workers_max=max(1, row.workers_max) if row else 1,
        workers_min=row.workers_min if row else 0,
        scaler_delay_s=float(row.scaler_value) if row and row.scaler_type == "QUEUE_DELAY" else 4.0,
        gpu=gpu,
        cold_start_s=cold,
        cold_start_source=cold_source,
        free_share=share,
        free_share_source=share_source,
        recorded_usd=spend[True],
        others_usd=spend[False],
    )


def evaluate(
    inputs: Inputs, candidate: Candidate, batch_times_s: Sequence[float], workers_max: int | None = None
) -> Outcome:
    """Replay the recorded arrivals under ``candidate``."""
    arrivals = [replace(a, exec_s=a.exec_s * candidate.speed) for a in inputs.arrivals]
    if candidate.batch and batch_times_s:
        arrivals = list(hold_for_batches(arrivals, batch_times_s))
    model = EndpointModel(
        idle_timeout_s=candidate.idle_timeout_s,
        cold_start_s=candidate.cold_start_s,
        flex_usd_per_s=candidate.gpu.flex_usd_per_s,
        active_usd_per_s=candidate.gpu.active_usd_per_s,
        workers_max=max(workers_max or inputs.workers_max, candidate.workers_min, 1),
        workers_min=candidate.workers_min,
        scaler_delay_s=inputs.scaler_delay_s,
    )
    result: ReplayResult = replay(arrivals, model, start=inputs.start, end=inputs.end)
    immediate: list[float] = []
    held: list[float] = []
    for original, arrival, wait in zip(inputs.arrivals, arrivals, result.waits_s, strict=True):
        if not math.isfinite(wait):
            continue
        if arrival.release_at is not None and arrival.release_at > arrival.at:
            held.append(wait)
        else:
            immediate.append(wait + arrival.exec_s - original.exec_s)
    return Outcome(
        candidate=candidate,
        usd_month=inputs.per_month(result.usd),
        wait_p50_s=nearest_rank(immediate, 50),
        wait_p95_s=nearest_rank(immediate, 95),
        held_mean_s=sum(held) / len(held) if held else None,
        cold_starts_month=inputs.per_month(result.cold_starts),
        unserved=result.unserved,
    )


def today(inputs: Inputs, speeds: Mapping[str, float]) -> Candidate:
    return Candidate(inputs.idle_timeout_s, inputs.workers_min, inputs.gpu, 1.0, inputs.cold_start_s, False)


def _speed(gpu: GpuPrice, current: GpuPrice, speeds: Mapping[str, float]) -> float | None:
    mine, theirs = speeds.get(gpu.gpu_type_id), speeds.get(current.gpu_type_id)
    if gpu.gpu_type_id == current.gpu_type_id:
        return 1.0
    if mine is None or theirs is None:
        return None
    return mine / theirs


def gpu_options(
    inputs: Inputs, prices: PriceTable, speeds: Mapping[str, float]
) -> list[tuple[GpuPrice, float]]:
    """(GPU, execution factor vs today's GPU), smallest (cheapest) first; equal prices and speeds once."""
    seen: set[tuple[float, float, float]] = set()
    options = []
    for gpu in sorted(
        prices.gpus, key=lambda g: (g.flex_usd_per_s, g.gpu_type_id != inputs.gpu.gpu_type_id, g.gpu_type_id)
    ):
        factor = _speed(gpu, inputs.gpu, speeds)
        if factor is None:
            continue
        key = (gpu.flex_usd_per_s, gpu.active_usd_per_s, factor)
        if key in seen and gpu.gpu_type_id != inputs.gpu.gpu_type_id:
            continue
        seen.add(key)
        options.append((gpu, factor))
    return options


def _lower_bound_usd(inputs: Inputs, candidate: Candidate) -> float:
    """No replay can cost less: every execution second at the flex price, plus the active workers."""
    execution = sum(a.exec_s for a in inputs.arrivals) * candidate.speed * candidate.gpu.flex_usd_per_s
    active = candidate.workers_min * (inputs.end - inputs.start) * candidate.gpu.active_usd_per_s
    return inputs.per_month(execution + active)


@dataclass(frozen=True, slots=True)
class Search:
    best: Outcome | None
    """The cheapest combination within the budget and the wait limit (None: none fits)."""
    best_within_wait: Outcome | None
    """The cheapest within the wait limit, whatever the budget."""
    replays: int


def cheapest(
    inputs: Inputs,
    candidates: Sequence[Candidate],
    *,
    budget_usd_month: float,
    max_wait_s: float,
    batch_times_s: Sequence[float],
) -> Search:
    """Branch and bound over ``candidates``: replay in increasing order of the execution lower bound and
    stop once the bound exceeds the cheapest acceptable option found."""
    best_within_wait: Outcome | None = None
    replays = 0
    for candidate in sorted(candidates, key=lambda c: _lower_bound_usd(inputs, c)):
        if best_within_wait is not None and _lower_bound_usd(inputs, candidate) >= best_within_wait.usd_month:
            break
        outcome = evaluate(inputs, candidate, batch_times_s)
        replays += 1
        if outcome.unserved or outcome.wait_p95_s is None or outcome.wait_p95_s > max_wait_s + 1e-9:
            continue
        if best_within_wait is None or outcome.usd_month < best_within_wait.usd_month:
            best_within_wait = outcome
    best = best_within_wait if best_within_wait and best_within_wait.usd_month <= budget_usd_month else None
    return Search(best, best_within_wait, replays)


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} s"


def _hours(value: float | None) -> str:
    return "" if value is None else f"held {value / 3600:.1f} h on average"


@dataclass(frozen=True, slots=True)
class Option:
    """One row of a what-if table: a setting changed alone, and what the replay made of it."""

    label: str
    """The setting's value as a person reads it (``"5 s"``, ``"RTX A4000 ×1.71"``)."""
    outcome: Outcome
    note: str = ""
    """``"today"`` for today's setting, ``"assumed"`` for a value that is the user's assumption."""


@dataclass(frozen=True, slots=True)
class Options:
    """Every figure ``whatif`` prints, as data: :func:`whatif_text` words it for the terminal, the dashboard's
    endpoint screen draws it as a table. One computation, so both always show the same numbers."""

    inputs: Inputs
    today: Candidate
    base: Outcome
    """The replay of today's settings."""
    fixed_usd: float
    """The month's fixed costs (``budget.fixed_usd_per_month``)."""
    others_usd_month: float
    """The other endpoints at their measured rate, per month."""
    budget_usd_month: float
    """What is left of the monthly budget for this endpoint."""
    max_wait_s: float
    max_wait_given: bool
    """False when the wait limit is today's p95 (nothing given)."""
    idle: tuple[Option, ...]
    workers: tuple[Option, ...]
    gpus: tuple[Option, ...]
    cold_starts: tuple[Option, ...]
    """Today's cold start and the FlashBoot assumption; empty when none was given."""
    batching: tuple[Option, ...]
    """Served at once vs held for the batches; empty without batch times or free requests."""
    search: Search

    @property
    def found(self) -> Outcome | None:
        """The cheapest combination within the budget, else the cheapest within the wait (see ``search``)."""
        return self.search.best or self.search.best_within_wait

    def changes(self) -> list[str]:
        """What ``found`` changes from today's settings, in words (empty: nothing, or nothing found)."""
        found = self.found
        return [] if found is None else found.candidate.describe(self.today)


def whatif_options(
    inputs: Inputs,
    config: Config,
    *,
    speeds: Mapping[str, float],
    max_wait_p95_s: float | None = None,
    flashboot_cold_start_s: float | None = None,
    batch_times_s: Sequence[float] = (),
) -> Options:
    """Replay ``inputs`` under each option alone, then search the cheapest combination that fits."""
    fixed_usd = config.budget.fixed_usd_per_month
    others_month = inputs.per_month(inputs.others_usd)
    budget_usd = config.budget.monthly_usd - fixed_usd - others_month
    now_candidate = today(inputs, speeds)
    base = evaluate(inputs, now_candidate, batch_times_s)
    limit = max_wait_p95_s if max_wait_p95_s is not None else (base.wait_p95_s or 0.0)

    def note(is_today: bool) -> str:
        return "today" if is_today else ""

    idle_values = sorted({*IDLE_TIMEOUTS_S, inputs.idle_timeout_s})
    idle = tuple(
        Option(
            f"{v:g} s",
            evaluate(inputs, replace(now_candidate, idle_timeout_s=v), batch_times_s),
            note(v == inputs.idle_timeout_s),
        )
        for v in idle_values
    )
    workers = tuple(
        Option(
            f"{n}",
            evaluate(inputs, replace(now_candidate, workers_min=n), batch_times_s),
            note(n == inputs.workers_min),
        )
        for n in (0, 1)
    )
    gpus = gpu_options(inputs, config.price_table, speeds)
    gpu_rows = tuple(
        Option(
            f"{_short(gpu)} ×{factor:.2f}",
            evaluate(inputs, replace(now_candidate, gpu=gpu, speed=factor), batch_times_s),
            note(gpu.gpu_type_id == inputs.gpu.gpu_type_id),
        )
        for gpu, factor in gpus
    )
    colds = [inputs.cold_start_s]
    cold_rows: tuple[Option, ...] = ()
    if flashboot_cold_start_s is not None and flashboot_cold_start_s != inputs.cold_start_s:
        colds.append(flashboot_cold_start_s)
        cold_rows = tuple(
            Option(
                f"{c:.1f} s",
                evaluate(inputs, replace(now_candidate, cold_start_s=c), batch_times_s),
                "today" if c == inputs.cold_start_s else "assumed",
            )
            for c in colds
        )
    batching = [False]
    batch_rows: tuple[Option, ...] = ()
    if batch_times_s and inputs.free_share > 0:
        batching.append(True)
        batch_rows = (
            Option("served at once", base, "today"),
            Option(
                "held for the batches", evaluate(inputs, replace(now_candidate, batch=True), batch_times_s)
            ),
        )
    candidates = [
        Candidate(idle_s, n, gpu, factor, cold, batch)
        for idle_s in idle_values
        for n in (0, 1)
        for gpu, factor in gpus
        for cold in colds
        for batch in batching
    ]
    search = cheapest(
        inputs, candidates, budget_usd_month=budget_usd, max_wait_s=limit, batch_times_s=batch_times_s
    )
    return Options(
        inputs=inputs,
        today=now_candidate,
        base=base,
        fixed_usd=fixed_usd,
        others_usd_month=others_month,
        budget_usd_month=budget_usd,
        max_wait_s=limit,
        max_wait_given=max_wait_p95_s is not None,
        idle=idle,
        workers=workers,
        gpus=gpu_rows,
        cold_starts=cold_rows,
        batching=batch_rows,
        search=search,
    )


def whatif_text(
    ledger: ReportLedger,
    config: Config,
    *,
    endpoint: str | None,
    days: float,
    now: float,
    max_wait_p95_s: float | None,
    flashboot_cold_start_s: float | None,
    baseline_cold_start_s: float | None,
    exec_s: float | None,
    speeds: Mapping[str, float],
    batch_times_s: Sequence[float],
) -> str:
    inputs = load_inputs(
        ledger,
        config,
        endpoint=endpoint,
        days=days,
        now=now,
        baseline_cold_start_s=baseline_cold_start_s,
        exec_s=exec_s,
    )
    options = whatif_options(
        inputs,
        config,
        speeds=speeds,
        max_wait_p95_s=max_wait_p95_s,
        flashboot_cold_start_s=flashboot_cold_start_s,
        batch_times_s=batch_times_s,
    )
    rate = config.budget.usd_per_eur

    def eur(usd: float) -> str:
        return f"{usd_to_eur(usd, rate):,.2f} €"

    fixed_usd = options.fixed_usd
    others_month = options.others_usd_month
    budget_usd = options.budget_usd_month
    base = options.base
    limit = options.max_wait_s
    label = f"{inputs.name} ({inputs.endpoint_id})" if inputs.name else inputs.endpoint_id
    lines = [
        f"What-if for {label}: {len(inputs.arrivals):,} requests replayed over {inputs.days:.1f} days "
        f"({inputs.from_jobs:,} from job records, {inputs.from_counts:,} from per-minute request counts).",
        f"Today: idle timeout {inputs.idle_timeout_s:g} s, {inputs.workers_min} active worker(s), max "
        "workers "
        f"{inputs.workers_max}, {_short(inputs.gpu)}, cold start {inputs.cold_start_s:.1f} s "
        f"({inputs.cold_start_source}), execution {inputs.mean_exec_s:.2f} s on average "
        f"({inputs.exec_source}).",
        f"Budget {config.budget.monthly_eur:.2f} €/month: fixed costs {eur(fixed_usd)}, other endpoints "
        f"{eur(others_month)}/month, so {eur(budget_usd)}/month for this endpoint.",
        f"The replay of today's settings: {eur(base.usd_month)}/month; the ledger counted "
        f"{eur(inputs.per_month(inputs.recorded_usd))}/month over the same days (RunPod's bill where "
        "billed).",
        "Waits: p50/p95 of the time from sending a request to the start of its execution, plus any slower "
        "execution on another GPU (requests served at once).",
    ]

    def table(title: str, rows: Sequence[Option]) -> None:
        lines.extend(["", title])
        header = ("option", "€/month", "vs today", "wait p50", "wait p95", "cold starts/month", "")
        body = [
            (
                row.label + (f" ({row.note})" if row.note else ""),
                eur(o.usd_month),
                f"{usd_to_eur(o.usd_month - base.usd_month, rate):+,.2f} €",
                _fmt_s(o.wait_p50_s),
                _fmt_s(o.wait_p95_s),
                f"{o.cold_starts_month:,.0f}",
                _hours(o.held_mean_s) + (f"{o.unserved} never served" if o.unserved else ""),
            )
            for row in rows
            for o in (row.outcome,)
        ]
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
        right = {1, 2, 3, 4, 5}
        for cells in (header, *body):
            lines.append(
                "  "
                + "  ".join(
                    c.rjust(w) if i in right else c.ljust(w)
                    for i, (c, w) in enumerate(zip(cells, widths, strict=True))
                ).rstrip()
            )

    table("Idle timeout (how long a worker waits for the next request before it stops):", options.idle)
    table("Active workers (always on, billed at the active price):", options.workers)
    table(
        "GPU type, smallest first (execution time × the speed factor: an assumption, see --speed):",
        options.gpus,
    )
    if options.cold_starts:
        table("Cold start (FlashBoot: the shorter value is your assumption):", options.cold_starts)
    else:
        lines += [
            "",
            "Cold start: give --cold-start-s S to price a shorter one (FlashBoot, your assumption).",
        ]
    if options.batching:
        slots = ", ".join(f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}" for t in batch_times_s)
        table(
            f"Free requests ({inputs.free_share * 100:.0f} %, {inputs.free_share_source}) held for batches "
            "at "
            f"{slots} UTC:",
            options.batching,
        )

    search = options.search
    lines += [
        "",
        f"Cheapest combination within the budget and a p95 wait of at most {limit:.1f} s"
        + ("" if options.max_wait_given else " (today's)")
        + f" ({search.replays} replays):",
    ]
    found = options.found
    if found is None:
        lines.append("  none: no combination keeps the p95 wait that low.")
        return "\n".join(lines)
    if search.best is None:
        lines.append(
            f"  none fits {eur(budget_usd)}/month for this endpoint; the cheapest within the wait costs "
            f"{eur(found.usd_month)}/month:"
        )
    changes = options.changes() or ["nothing: today's settings are the cheapest"]
    lines += [
        f"  {eur(found.usd_month)}/month ({usd_to_eur(found.usd_month - base.usd_month, rate):+,.2f} € vs "
        "today), "
        f"wait p50 {_fmt_s(found.wait_p50_s)}, p95 {_fmt_s(found.wait_p95_s)}"
        + (f", free requests {_hours(found.held_mean_s)}" if found.held_mean_s is not None else "")
        + ".",
        "  Changes: " + "; ".join(changes) + ".",
        "  With the fixed costs and the other endpoints: "
        f"{eur(found.usd_month + fixed_usd + others_month)}/month "
        f"against {config.budget.monthly_eur:.2f} €.",
    ]
    return "\n".join(lines)
