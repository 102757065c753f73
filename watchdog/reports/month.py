"""One month's money, for a treasurer: :func:`month_figures` reads the ledger and the configuration.

Rules (each one said in the report itself):

- **The bill first.** Per endpoint and hour, RunPod's bill counts where the ledger has it; the daemon's live
  estimate counts only for the hours not billed yet (billing lags by hours). Both are USD.
- **Fixed costs** (``budget.fixed_costs``, the Hugging Face space) count in full from the 1st, as the
  daemon counts them.
- **Euros for people**: every figure is converted once, at ``budget.usd_per_eur``.
- **Free requests** cost their share of the variable spend: the share measured from the logs' tier field
  when the daemon saved one for this month (at least ``watchdog.money.MIN_TIERED_REQUESTS`` requests), else
  ``budget.free_share``.
- **Savings** are the decisions' ``saved_usd`` on the steps that count (proposed in dry-run, applied in
  enforce), the daemon's own rule.
- **Forecast** for next month: this month's daily variable rate × next month's days + the fixed costs.
"""

from __future__ import annotations

import calendar
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from watchdog.clock import DAY_S, month_start, next_month_start
from watchdog.config import Config
from watchdog.ledger import UNATTRIBUTED_ENDPOINT
from watchdog.money import MIN_TIERED_REQUESTS, measured_free_share, usd_to_eur
from watchdog.reports.replay import nearest_rank
from watchdog.reports.source import ReportLedger

ACCOUNT_LABEL = "(account: storage, fees)"
SAVING_OUTCOMES = ("proposed", "applied")


def parse_month(text: str) -> float:
    """``YYYY-MM`` → the month's start (UTC epoch seconds); ValueError for anything else."""
    try:
        parsed = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"expected a month as YYYY-MM, got {text!r}") from None
    return parsed.timestamp()


def month_label(start: float) -> str:
    return datetime.fromtimestamp(start, tz=UTC).strftime("%Y-%m")


def month_title(start: float) -> str:
    return datetime.fromtimestamp(start, tz=UTC).strftime("%B %Y")


@dataclass(frozen=True, slots=True)
class EndpointMonth:
    endpoint_id: str
    name: str
    usd: float
    """What counts: billed hours at the bill, the others at the estimate."""
    billed_usd: float
    estimate_only_usd: float
    """The estimate counted for hours not billed yet."""
    billed_hours: int
    estimate_hours: int
    estimate_on_billed_usd: float
    """The live estimate of the billed hours (what the bill is compared with)."""
    requests: int
    cold_starts: int
    cold_start_s: float
    cold_start_p50_s: float | None
    cold_start_p95_s: float | None
    gpu_seconds: float
    running_s: float
    idle_s: float
    mean_execution_s: float | None
    """Mean execution time of the jobs the ledger recorded with one (None: none recorded)."""
    jobs_timed: int

    @property
    def drift_usd(self) -> float:
        return self.billed_usd - self.estimate_on_billed_usd

    @property
    def cost_per_1000_usd(self) -> float | None:
        return self.usd * 1000.0 / self.requests if self.requests else None


@dataclass(frozen=True, slots=True)
class Incident:
    """One decision (all its steps) taken or proposed this month."""

    at: float
    endpoint_id: str | None
    rule: str
    action: str
    mode: str
    outcome: str
    """The last recorded step's outcome."""
    reason: str
    saved_usd: float
    steps: int


@dataclass(frozen=True, slots=True)
class DayPoint:
    day: str
    """YYYY-MM-DD."""
    variable_usd: float
    cumulative_usd: float
    """Fixed costs + variable spend up to the end of this day."""
    basis: str
    """'billed', 'estimate', 'mixed' or 'none'."""


@dataclass(frozen=True, slots=True)
class MonthFigures:
    month: str
    start: float
    end: float
    as_of: float
    """The figures are complete up to here (``end`` for a past month)."""
    budget_eur: float
    usd_per_eur: float
    fixed_costs: tuple[tuple[str, float], ...]
    """(name, USD per month)."""
    endpoints: tuple[EndpointMonth, ...]
    free_share: float
    free_share_measured: bool
    incidents: tuple[Incident, ...]
    days: tuple[DayPoint, ...]
    alerts: int
    alerts_sent: int
    cost_per_1000_alert_usd: float
    cold_start_target_s: float

    # -- totals -----------------------------------------------------------------------------------------

    def eur(self, usd: float) -> float:
        return usd_to_eur(usd, self.usd_per_eur)

    @property
    def complete(self) -> bool:
        return self.as_of >= self.end

    @property
    def fixed_usd(self) -> float:
        return sum(usd for _, usd in self.fixed_costs)

    @property
    def variable_usd(self) -> float:
        return sum(e.usd for e in self.endpoints)

    @property
    def total_usd(self) -> float:
        return self.fixed_usd + self.variable_usd

    @property
    def billed_usd(self) -> float:
        return sum(e.billed_usd for e in self.endpoints)

    @property
    def estimate_only_usd(self) -> float:
        return sum(e.estimate_only_usd for e in self.endpoints)

    @property
    def billed_hours(self) -> int:
        return sum(e.billed_hours for e in self.endpoints)

    @property
    def estimate_hours(self) -> int:
        return sum(e.estimate_hours for e in self.endpoints)

    @property
    def drift_usd(self) -> float:
        return sum(e.drift_usd for e in self.endpoints)

    @property
    def estimate_on_billed_usd(self) -> float:
        return sum(e.estimate_on_billed_usd for e in self.endpoints)

    @property
    def drift_ratio(self) -> float | None:
        """Drift relative to the estimate of the billed hours (None without billed hours)."""
        base = self.estimate_on_billed_usd
        return self.drift_usd / base if base > 0 else None

    @property
    def requests(self) -> int:
        return sum(e.requests for e in self.endpoints)

    @property
    def cold_starts(self) -> int:
        return sum(e.cold_starts for e in self.endpoints)

    @property
    def cost_per_1000_usd(self) -> float | None:
        return self.variable_usd * 1000.0 / self.requests if self.requests else None

    @property
    def subsidy_usd(self) -> float:
        """What the requests offered free cost (their share of the variable spend)."""
        return self.variable_usd * self.free_share

    @property
    def free_requests(self) -> int:
        return round(self.requests * self.free_share)

    @property
    def saved_enforce_usd(self) -> float:
        return sum(i.saved_usd for i in self.incidents if i.mode == "enforce")

    @property
    def saved_dry_run_usd(self) -> float:
        return sum(i.saved_usd for i in self.incidents if i.mode != "enforce")

    @property
    def used_ratio(self) -> float:
        return self.eur(self.total_usd) / self.budget_eur if self.budget_eur > 0 else math.inf

    @property
    def days_elapsed(self) -> float:
        return max(1.0, (min(self.as_of, self.end) - self.start) / DAY_S)

    @property
    def daily_rate_usd(self) -> float:
        """Variable spend per day this month (divided by at least one day)."""
        return self.variable_usd / self.days_elapsed

    @property
    def end_of_month_usd(self) -> float:
        """This month at its end, at this month's daily rate (= the total once the month is over)."""
        days_left = max(0.0, (self.end - max(self.as_of, self.start)) / DAY_S)
        return self.total_usd + self.daily_rate_usd * days_left

    @property
    def next_month(self) -> str:
        return month_label(self.end)

    @property
    def next_month_days(self) -> int:
        moment = datetime.fromtimestamp(self.end, tz=UTC)
        return calendar.monthrange(moment.year, moment.month)[1]

    @property
    def forecast_next_month_usd(self) -> float:
        return self.fixed_usd + self.daily_rate_usd * self.next_month_days


def _incidents(rows: Sequence[dict[str, object]]) -> tuple[Incident, ...]:
    groups: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        key = str(row["dedupe_key"] or f"step:{row['id']}")
        groups[key].append(row)
    incidents = []
    for all_steps in groups.values():
        # An "intended" step is the trace written before acting; it shows only when nothing followed it.
        steps = [s for s in all_steps if s["outcome"] != "intended"] or all_steps
        first, last = steps[0], steps[-1]
        saved = sum(
            float(str(s["saved_usd"])) for s in steps if s["outcome"] in SAVING_OUTCOMES and s["saved_usd"]
        )
        incidents.append(
            Incident(
                at=float(str(first["at"])),
                endpoint_id=None if first["endpoint_id"] is None else str(first["endpoint_id"]),
                rule=str(first["rule"]),
                action=str(first["action"]),
                mode=str(last["mode"]),
                outcome=str(last["outcome"]),
                reason=str(last["reason"]),
                saved_usd=saved,
                steps=len(steps),
            )
        )
    return tuple(sorted(incidents, key=lambda i: i.at))


def month_figures(ledger: ReportLedger, config: Config, start: float, *, now: float) -> MonthFigures:
    """The month starting at ``start`` (a UTC month start), as of ``now``, from one snapshot of the ledger."""
    if month_start(start) != start:
        raise ValueError(f"{start!r} is not the start of a UTC month")
    end = next_month_start(start)
    as_of = min(max(now, start), end)
    with ledger.consistent():
        hours = ledger.hourly_spend(start, end)
        daily = ledger.daily_spend(start, end)
        requests = ledger.daily_requests(start, end)
        sessions = ledger.sessions(start, end)
        jobs = ledger.jobs(start, end)
        actions = ledger.actions(start, end)
        alerts = ledger.alerts_between(start, end)
        configs = ledger.latest_configs()
        tier_month, free, tiered = ledger.tiers()
    hourly_days = {(h["endpoint_id"], h["day"]) for h in hours}

    spend: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    for h in hours:
        cell = spend[h["endpoint_id"]]
        cell[0] += h["usd"]
        if h["basis"] == "billed":
            cell[1] += h["billed_usd"]
            cell[3] += 1
            cell[5] += h["estimate_usd"]
        else:
            cell[2] += h["usd"]
            cell[4] += 1
    for d in daily:  # days folded by retention (no hourly rows left)
        if (d["endpoint_id"], d["day"]) in hourly_days:
            continue
        cell = spend[d["endpoint_id"]]
        cell[0] += d["usd"]
        if d["billed_usd"] is not None:
            cell[1] += d["billed_usd"]
            cell[5] += d["estimate_usd"]
        else:
            cell[2] += d["usd"]
        cell[3] += d["billed_hours"]
        cell[4] += d["estimate_only_hours"]
    gpu_seconds: dict[str, float] = defaultdict(float)
    for d in daily:
        gpu_seconds[d["endpoint_id"]] += d["gpu_seconds_total"]
    request_count: dict[str, int] = defaultdict(int)
    for r in requests:
        request_count[r["endpoint_id"]] += int(r["requests"])
    by_endpoint_sessions = defaultdict(list)
    for s in sessions:
        by_endpoint_sessions[s.endpoint_id].append(s)
    executions: dict[str, list[float]] = defaultdict(list)
    for job in jobs:
        if job.execution_ms is not None and job.execution_ms > 0:
            executions[job.endpoint_id].append(job.execution_ms / 1000.0)
    for endpoint_id in by_endpoint_sessions:
        spend.setdefault(endpoint_id, [0.0] * 6)
    for endpoint_id in request_count:
        spend.setdefault(endpoint_id, [0.0] * 6)

    endpoints = []
    for endpoint_id in sorted(spend):
        usd, billed, estimate_only, billed_h, estimate_h, estimate_on_billed = spend[endpoint_id]
        own = by_endpoint_sessions.get(endpoint_id, [])
        samples = [s.cold_start_seconds for s in own if s.cold_start_seconds > 0]
        timed = executions.get(endpoint_id, [])
        config_row = configs.get(endpoint_id)
        name = (
            ACCOUNT_LABEL if endpoint_id == UNATTRIBUTED_ENDPOINT else (config_row.name if config_row else "")
        )
        endpoints.append(
            EndpointMonth(
                endpoint_id=endpoint_id,
                name=name,
                usd=usd,
                billed_usd=billed,
                estimate_only_usd=estimate_only,
                billed_hours=int(billed_h),
                estimate_hours=int(estimate_h),
                estimate_on_billed_usd=estimate_on_billed,
                requests=request_count.get(endpoint_id, 0),
                cold_starts=len(own),
                cold_start_s=sum(samples),
                cold_start_p50_s=nearest_rank(samples, 50),
                cold_start_p95_s=nearest_rank(samples, 95),
                gpu_seconds=gpu_seconds.get(endpoint_id, 0.0),
                running_s=sum(s.running_s for s in own),
                idle_s=sum(s.idle_s for s in own),
                mean_execution_s=sum(timed) / len(timed) if timed else None,
                jobs_timed=len(timed),
            )
        )

    share, measured = config.budget.free_share, False
    if tier_month == month_label(start) and tiered >= MIN_TIERED_REQUESTS:
        share, measured = measured_free_share(free, tiered, config.budget.free_share)

    fixed = tuple((cost.name, cost.usd_per_month) for cost in config.budget.fixed_costs)
    days = _days(start, as_of, daily, sum(usd for _, usd in fixed))
    return MonthFigures(
        month=month_label(start),
        start=start,
        end=end,
        as_of=as_of,
        budget_eur=config.budget.monthly_eur,
        usd_per_eur=config.budget.usd_per_eur,
        fixed_costs=fixed,
        endpoints=tuple(endpoints),
        free_share=share,
        free_share_measured=measured,
        incidents=_incidents(actions),
        days=days,
        alerts=len(alerts),
        alerts_sent=sum(1 for a in alerts if a["state"] == "sent"),
        cost_per_1000_alert_usd=config.slack.cost_per_1000_alert_usd,
        cold_start_target_s=config.slack.cold_start_alert_s,
    )


def _days(
    start: float, as_of: float, daily: Sequence[dict[str, object]], fixed_usd: float
) -> tuple[DayPoint, ...]:
    per_day: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    bases: dict[str, set[str]] = defaultdict(set)
    for row in daily:
        day = str(row["day"])
        per_day[day][0] += float(str(row["usd"]))
        bases[day].add(str(row["basis"]))
    points = []
    cumulative = fixed_usd
    day_start = start
    while day_start < as_of:
        day = datetime.fromtimestamp(day_start, tz=UTC).strftime("%Y-%m-%d")
        variable = per_day[day][0] if day in per_day else 0.0
        cumulative += variable
        kinds = bases.get(day, set())
        basis = "none" if not kinds else kinds.pop() if len(kinds) == 1 else "mixed"
        points.append(DayPoint(day, variable, cumulative, basis))
        day_start += DAY_S
    return tuple(points)
