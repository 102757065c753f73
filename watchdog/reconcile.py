"""Which worker states RunPod really bills, read from its own bill: the money model's one open question.

Why: whether RunPod bills a worker's cold start (INITIALIZING) and a warm IDLE worker is uncertain
(runpod-api.md §9: the 2025 docs bill the start, the 2026 state table does not). The money model takes the
conservative side (``[prices] billed_states``, default :data:`~watchdog.vocabulary.BILLED_BY_DEFAULT`), so
its live estimate can only over-count. RunPod's hourly bill (``gpuAmount`` per endpoint and hour of
``/v2/billing/serverless``) settles the question for this account: when the bill consistently equals the
estimate *minus* one counted state's time (or *plus* one uncounted state's), :func:`reconcile_billed_states`
returns a :class:`BilledStatesFinding` naming the state, the evidence and the config line to change. The
daemon says so (at most once a day); it never changes its own configuration.

What is compared, per endpoint and UTC hour (a *sample*):

* ``C``: the estimate, the configured states' GPU seconds priced from the price table;
* ``B``: RunPod's GPU amount for that hour (``gpuAmount``; disk and fees are other meters);
* ``x``: one state's GPU seconds priced the same way, negative for a counted state (the hypothesis "RunPod
  does not bill it": ``B ≈ C - x``), positive for an uncounted one (``B ≈ C + x``).

An hour is a sample only when it is *complete* (the estimate observed all of it: a restart or a blind
stretch leaves a hole the bill does not have), *final* (it ended at least ``lag_s`` ago: RunPod's recent
buckets still grow), *billed* (RunPod reported that endpoint for that hour or a later one) and *active*
(the estimate saw some worker). A state's hypothesis holds when all of these do:

1. **telling hours**: at least ``min_hours`` samples in which the state's time is at least
   ``min_state_s`` (a poll blurs each state change by up to one poll interval, and RunPod rounds each
   session up to the second: a few seconds tell nothing);
2. **consistency**: in at least ``min_match_share`` of the telling hours the bill is nearer the hypothesis
   than the configured estimate (a vote per hour: noise that is not the state's splits the votes);
3. **size**: the least-squares ratio of the drift ``B - C`` to ``x`` is within ``[min_ratio, max_ratio]``
   (the bill misses, or adds, about all of the state's time, not a part of it such as a different active
   price for an always-on worker);
4. **explanation**: the hypothesis leaves at most ``max_unexplained`` of the squared drift, and fits at
   least ``min_gain_over_flat`` times better than a flat ratio ``B ≈ k C`` (a price change scales every
   hour alike; one state's time does not).

Two states passing with about the same fit (their times rise and fall together) is ambiguous: no finding.
Neither is a bill that disagrees in a way no single state explains (two states, a wrong price, workers the
daemon never saw): this module answers one question only. Pure: the ledger's hours, the observed
coverage, the billing records and ``now`` come in; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from watchdog.clock import DAY_S, HOUR_S
from watchdog.ledger import StateSeconds
from watchdog.models import BillingRecord
from watchdog.vocabulary import WorkerStatus


@dataclass(frozen=True, slots=True)
class ReconcileRules:
    """How much evidence a finding needs (see the module docstring for what each rule guards against)."""

    window_s: float = 7 * DAY_S
    """Only hours starting within this many seconds before now are looked at."""
    lag_s: float = 3 * HOUR_S
    """An hour that ended less than this before now is not final in RunPod's bill yet (buckets lag)."""
    min_hours: int = 6
    """Fewest telling hours (the state's time at least ``min_state_s``) a finding needs."""
    min_state_s: float = 10.0
    """GPU seconds of the state in an hour for the hour to tell (two 5-second polls)."""
    min_coverage_s: float = HOUR_S - 60.0
    """Seconds of an hour the estimate must have observed for the hour to count."""
    min_match_share: float = 0.8
    """Share of the telling hours whose bill is nearer the hypothesis than the configured estimate."""
    min_ratio: float = 0.8
    max_ratio: float = 1.2
    """Bounds of the least-squares ratio of the drift to the state's time."""
    max_unexplained: float = 0.25
    """Largest share of the squared drift the hypothesis may leave unexplained."""
    min_gain_over_flat: float = 2.0
    """How many times better the hypothesis must fit than a flat ratio between bill and estimate."""
    ambiguity: float = 0.5
    """With two passing states, the better must leave at most this share of the other's unexplained drift."""


DEFAULT_RULES = ReconcileRules()
WINDOW_S = DEFAULT_RULES.window_s
"""The default window: the hours the caller reads from the ledger start at ``now - WINDOW_S``."""


@dataclass(frozen=True, slots=True)
class HourSample:
    """One endpoint's complete, final, billed, active hour."""

    endpoint_id: str
    hour: float
    gpu_s: Mapping[WorkerStatus, float]
    """GPU seconds the estimate saw per worker state (billed or not)."""
    usd: Mapping[WorkerStatus, float]
    """Those seconds priced from the price table, as if billed."""
    billed_usd: float
    """RunPod's GPU amount for the hour."""

    def estimate_usd(self, billed_states: frozenset[WorkerStatus]) -> float:
        return sum(usd for state, usd in self.usd.items() if state in billed_states)

    def estimate_gpu_s(self, billed_states: frozenset[WorkerStatus]) -> float:
        return sum(seconds for state, seconds in self.gpu_s.items() if state in billed_states)

    @property
    def usd_per_gpu_s(self) -> float:
        """The hour's average price (several GPU types may share an endpoint): turns the bill into seconds."""
        seconds = sum(self.gpu_s.values())
        return sum(self.usd.values()) / seconds if seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class BilledStatesFinding:
    """RunPod's bill consistently differs from the estimate by one worker state's time."""

    state: WorkerStatus
    billed_by_runpod: bool
    """False: the bill leaves out a state the money model counts (the estimate over-counts). True: the
    bill charges a state the money model leaves out (the estimate under-counts)."""
    hours: int
    """Samples (complete, final, billed, active endpoint-hours) in the window."""
    telling_hours: int
    """Samples in which the state's time was large enough to tell."""
    matching_hours: int
    """Telling hours whose bill was nearer the hypothesis than the configured estimate."""
    endpoints: tuple[str, ...]
    first_hour: float
    last_hour: float
    state_gpu_s: float
    """The state's GPU seconds over the samples."""
    estimate_gpu_s: float
    """The configured states' GPU seconds over the samples."""
    billed_gpu_s: float
    """RunPod's GPU amount over the samples, turned into seconds at each hour's average price."""
    estimate_usd: float
    billed_usd: float
    billed_share: float
    """The share of the state's time the bill charges (least squares): about 0 or about 1."""
    suggested_states: tuple[WorkerStatus, ...]
    """``billed_states`` as the bill suggests, in :class:`WorkerStatus` order."""

    @property
    def estimate_error(self) -> float | None:
        """estimate / bill - 1 over the samples: positive when the estimate over-counts (None: no bill)."""
        return self.estimate_usd / self.billed_usd - 1.0 if self.billed_usd > 0 else None

    @property
    def config_line(self) -> str:
        """The ``[prices]`` line the evidence suggests."""
        return "billed_states = [" + ", ".join(f'"{state}"' for state in self.suggested_states) + "]"


def billed_gpu_usd(record: BillingRecord) -> float:
    """A record's GPU amount; when RunPod leaves ``gpuAmount`` out (0), the total less the other meters."""
    if record.gpu_usd > 0:
        return record.gpu_usd
    return max(0.0, record.total_usd - record.cpu_usd - record.disk_usd - record.fee_usd)


def usable_hours(
    state_seconds: Iterable[StateSeconds],
    observed: Mapping[float, float],
    records: Iterable[BillingRecord],
    *,
    now: float,
    rules: ReconcileRules = DEFAULT_RULES,
) -> list[HourSample]:
    """The samples: endpoint-hours in the window that are complete, final, billed and active, in order."""
    billed: dict[tuple[str, float], float] = defaultdict(float)
    last_billed: dict[str, float] = {}
    for record in records:
        if record.endpoint_id is None or record.end - record.start > HOUR_S or record.start % HOUR_S:
            continue  # account-wide, or a bucket longer than an hour: cannot be set against one hour
        billed[(record.endpoint_id, record.start)] += billed_gpu_usd(record)
        last_billed[record.endpoint_id] = max(record.start, last_billed.get(record.endpoint_id, record.start))
    gpu_s: dict[tuple[str, float], dict[WorkerStatus, float]] = defaultdict(lambda: defaultdict(float))
    usd: dict[tuple[str, float], dict[WorkerStatus, float]] = defaultdict(lambda: defaultdict(float))
    for row in state_seconds:
        try:
            state = WorkerStatus(row.state)
        except ValueError:
            continue  # a status this version does not know: no hypothesis is about it
        gpu_s[(row.endpoint_id, row.hour)][state] += row.gpu_seconds
        usd[(row.endpoint_id, row.hour)][state] += row.usd
    samples = []
    for key in sorted(gpu_s):
        endpoint_id, hour = key
        final = now - rules.window_s <= hour and hour + HOUR_S + rules.lag_s <= now
        complete = observed.get(hour, 0.0) >= rules.min_coverage_s
        known = key in billed or hour < last_billed.get(endpoint_id, hour)
        if final and complete and known and sum(gpu_s[key].values()) > 0:
            samples.append(
                HourSample(endpoint_id, hour, dict(gpu_s[key]), dict(usd[key]), billed.get(key, 0.0))
            )
    return samples


def reconcile_billed_states(
    state_seconds: Iterable[StateSeconds],
    observed: Mapping[float, float],
    records: Iterable[BillingRecord],
    *,
    billed_states: frozenset[WorkerStatus],
    now: float,
    rules: ReconcileRules = DEFAULT_RULES,
) -> BilledStatesFinding | None:
    """The one worker state that explains how RunPod's bill differs from the estimate, or None.

    ``state_seconds``: the ledger's GPU seconds per endpoint, hour and worker state
    (``Ledger.state_seconds_since(now - WINDOW_S)``); ``observed``: the seconds of each hour the estimate
    observed (``Ledger.observed_seconds_since``); ``records``: RunPod's hourly billing records;
    ``billed_states``: what the money model counts (``config.prices.billed_state_set``).
    """
    samples = usable_hours(state_seconds, observed, records, now=now, rules=rules)
    if len(samples) < rules.min_hours:
        return None
    passed: list[tuple[float, BilledStatesFinding]] = []
    for state in WorkerStatus:
        counted = state in billed_states
        if state == WorkerStatus.RUNNING and counted:
            continue  # a bill without running time means a wrong price table, not an unbilled state
        tested = _test_state(samples, state, counted, billed_states, rules)
        if tested is not None:
            passed.append(tested)
    if not passed:
        return None
    passed.sort(key=lambda item: item[0])
    if len(passed) > 1 and passed[0][0] > rules.ambiguity * passed[1][0]:
        return None  # two states fit about as well: their times move together, the bill cannot tell
    return passed[0][1]


def _test_state(
    samples: Sequence[HourSample],
    state: WorkerStatus,
    counted: bool,
    billed_states: frozenset[WorkerStatus],
    rules: ReconcileRules,
) -> tuple[float, BilledStatesFinding] | None:
    """(unexplained share of the drift, the finding) when ``state`` explains the bill, else None."""
    sign = -1.0 if counted else 1.0
    xs = [sign * sample.usd.get(state, 0.0) for sample in samples]
    cs = [sample.estimate_usd(billed_states) for sample in samples]
    bs = [sample.billed_usd for sample in samples]
    ys = [b - c for b, c in zip(bs, cs, strict=True)]
    telling = [i for i, sample in enumerate(samples) if sample.gpu_s.get(state, 0.0) >= rules.min_state_s]
    if len(telling) < rules.min_hours:
        return None
    matching = [i for i in telling if abs(ys[i] - xs[i]) < abs(ys[i])]
    if len(matching) < rules.min_match_share * len(telling):
        return None
    sxx = sum(x * x for x in xs)
    if sxx <= 0:
        return None
    ratio = sum(x * y for x, y in zip(xs, ys, strict=True)) / sxx
    if not rules.min_ratio <= ratio <= rules.max_ratio:
        return None
    drift = sum(y * y for y in ys)
    unexplained = sum((y - x) ** 2 for x, y in zip(xs, ys, strict=True))
    if unexplained > rules.max_unexplained * drift:
        return None
    scc = sum(c * c for c in cs)
    k = sum(b * c for b, c in zip(bs, cs, strict=True)) / scc if scc > 0 else 0.0
    flat = sum((b - k * c) ** 2 for b, c in zip(bs, cs, strict=True))
    if not flat > rules.min_gain_over_flat * unexplained:
        return None
    suggested = billed_states - {state} if counted else billed_states | {state}
    finding = BilledStatesFinding(
        state=state,
        billed_by_runpod=not counted,
        hours=len(samples),
        telling_hours=len(telling),
        matching_hours=len(matching),
        endpoints=tuple(sorted({sample.endpoint_id for sample in samples})),
        first_hour=min(sample.hour for sample in samples),
        last_hour=max(sample.hour for sample in samples),
        state_gpu_s=sum(sample.gpu_s.get(state, 0.0) for sample in samples),
        estimate_gpu_s=sum(sample.estimate_gpu_s(billed_states) for sample in samples),
        billed_gpu_s=sum(
            sample.billed_usd / sample.usd_per_gpu_s for sample in samples if sample.usd_per_gpu_s > 0
        ),
        estimate_usd=sum(cs),
        billed_usd=sum(bs),
        billed_share=1.0 - ratio if counted else ratio,
        suggested_states=tuple(s for s in WorkerStatus if s in suggested),
    )
    return (unexplained / drift if drift > 0 else 0.0), finding
