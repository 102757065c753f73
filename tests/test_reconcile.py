"""Which worker states RunPod bills, from its bill: ``[prices] billed_states`` and its reconciliation.

WHY: whether RunPod bills the cold start (INITIALIZING) and a warm IDLE worker is uncertain (runpod-api.md
§9). The money model counts both (conservative) and watchdog/reconcile.py says when the hourly bill
consistently shows otherwise. The numbers below are GPU seconds of one RTX A6000 (0.00034 USD/s) per
endpoint and UTC hour; each case shows one reading of the bill, and the noise that must NOT read as one.
The last tests run the whole path against the simulator, whose billing can leave initializing time out.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest

from runpod_sim.app import DEFAULT_API_KEY
from runpod_sim.engine import SimOptions, Simulator
from runpod_sim.state import SimEndpoint
from sim_harness.wiring import SIM_BASE, sim_transport
from watchdog.client import RunPodClient
from watchdog.clock import ManualClock, from_iso
from watchdog.config import default_config, load_config
from watchdog.daemon.accounting import Accrued, accrue
from watchdog.daemon.notices import billed_states_alert
from watchdog.daemon.state import Accounting
from watchdog.errors import ConfigError, LedgerError
from watchdog.ledger import (
    AccountingInterval,
    Ledger,
    ObservedSeconds,
    SpendAccrual,
    StateSeconds,
    TickRecord,
)
from watchdog.models import BillingRecord, Worker
from watchdog.prices import DEFAULT_PRICES
from watchdog.reconcile import (
    DEFAULT_RULES,
    WINDOW_S,
    BilledStatesFinding,
    ReconcileRules,
    billed_gpu_usd,
    reconcile_billed_states,
    usable_hours,
)
from watchdog.vocabulary import BILLED_BY_DEFAULT, AlertKind, WorkerStatus

START = from_iso("2026-06-15T00:00:00Z")
H = 3600.0
PRICE = 0.00034
"""RTX A6000 flex, USD per GPU second."""
EP = "ep-llm"
INIT, RUN, IDLE, THROTTLED = (
    WorkerStatus.INITIALIZING,
    WorkerStatus.RUNNING,
    WorkerStatus.IDLE,
    WorkerStatus.THROTTLED,
)
DEFAULT = frozenset(BILLED_BY_DEFAULT)
WITHOUT_INIT = frozenset({RUN, IDLE})

HOURS: tuple[dict[WorkerStatus, float], ...] = (
    {INIT: 40, RUN: 200, IDLE: 10},  # one cold start, a few requests, the idle tails
    {INIT: 40, RUN: 60, IDLE: 5},
    {INIT: 80, RUN: 400, IDLE: 10},  # two cold starts
    {INIT: 40, RUN: 900, IDLE: 20},  # a busy hour: the cold start is a small share
    {INIT: 120, RUN: 300, IDLE: 15},
    {INIT: 40, RUN: 120, IDLE: 5},
    {INIT: 40, RUN: 250, IDLE: 10},
    {INIT: 80, RUN: 150, IDLE: 10},
)
"""Eight active hours; the cold start's share of an hour varies from 4 % to 38 %, as real traffic does
(a constant share could not be told from a price difference)."""


def state_rows(hours: Sequence[dict[WorkerStatus, float]], endpoint: str = EP) -> list[StateSeconds]:
    return [
        StateSeconds(endpoint, START + index * H, state.value, seconds, seconds * PRICE)
        for index, hour in enumerate(hours)
        for state, seconds in hour.items()
        if seconds
    ]


def bills(gpu_seconds: Sequence[float], endpoint: str = EP) -> list[BillingRecord]:
    """RunPod's hourly records: ``gpuAmount`` for so many GPU seconds (plus a disk meter, ignored)."""
    return [
        BillingRecord(
            start=START + index * H,
            end=START + (index + 1) * H,
            endpoint_id=endpoint,
            total_usd=seconds * PRICE + 0.001,
            gpu_usd=seconds * PRICE,
            disk_usd=0.001,
        )
        for index, seconds in enumerate(gpu_seconds)
    ]


def billed_as(states: frozenset[WorkerStatus], rounding_s: float = 1.0) -> list[float]:
    """What RunPod bills each hour if it bills ``states``; each session rounded up to the second."""
    return [sum(s for state, s in hour.items() if state in states) + rounding_s for hour in HOURS]


def fully_observed(count: int = len(HOURS)) -> dict[float, float]:
    return {START + index * H: H for index in range(count)}


AFTER = START + len(HOURS) * H + 3 * H
"""Three hours after the last hour ended: every bucket is final."""


def reconcile(
    gpu_seconds: Sequence[float],
    *,
    billed_states: frozenset[WorkerStatus] = DEFAULT,
    now: float = AFTER,
    hours: Sequence[dict[WorkerStatus, float]] = HOURS,
    observed: dict[float, float] | None = None,
    rules: ReconcileRules = DEFAULT_RULES,
) -> BilledStatesFinding | None:
    return reconcile_billed_states(
        state_rows(hours),
        fully_observed(len(hours)) if observed is None else observed,
        bills(gpu_seconds),
        billed_states=billed_states,
        now=now,
        rules=rules,
    )


# ------------------------------------------------------------------------------------- the readings


def test_a_bill_without_the_cold_starts_says_initializing_is_not_billed() -> None:
    finding = reconcile(billed_as(WITHOUT_INIT))

    assert finding is not None
    assert finding.state == INIT and not finding.billed_by_runpod
    assert (finding.hours, finding.telling_hours, finding.matching_hours) == (8, 8, 8)
    assert finding.state_gpu_s == 480  # 40 + 40 + 80 + 40 + 120 + 40 + 40 + 80
    assert finding.estimate_gpu_s == 2945  # the default counts initializing
    assert finding.billed_gpu_s == pytest.approx(2473)  # 2945 - 480 + 8 s of rounding
    assert finding.estimate_error == pytest.approx(2945 / 2473 - 1)  # the estimate over-counts 19 %
    assert finding.billed_share == pytest.approx(0.0, abs=0.03)
    assert finding.suggested_states == (RUN, IDLE)
    assert finding.config_line == 'billed_states = ["RUNNING", "IDLE"]'
    assert (finding.endpoints, finding.first_hour, finding.last_hour) == ((EP,), START, START + 7 * H)


def test_a_bill_without_warm_idle_time_says_idle_is_not_billed() -> None:
    # A standby worker that idles for minutes between requests (flash issue 364: it cost nothing).
    hours: list[dict[WorkerStatus, float]] = [
        {INIT: 40, RUN: r, IDLE: i}
        for r, i in ((200, 600), (60, 1200), (400, 300), (900, 900), (300, 2400), (120, 60), (250, 1800))
    ]
    billed = [h[INIT] + h[RUN] + 1 for h in hours]

    finding = reconcile(billed, hours=hours)

    assert finding is not None
    assert finding.state == IDLE and not finding.billed_by_runpod
    assert finding.telling_hours == finding.matching_hours == 7
    assert finding.config_line == 'billed_states = ["RUNNING", "INITIALIZING"]'


def test_a_bill_with_the_cold_starts_corrects_a_config_that_left_them_out() -> None:
    # Someone set billed_states = ["RUNNING", "IDLE"]; RunPod bills the cold start after all: the estimate
    # under-counts, the dangerous direction.
    finding = reconcile(billed_as(DEFAULT), billed_states=WITHOUT_INIT)

    assert finding is not None
    assert finding.state == INIT and finding.billed_by_runpod
    assert finding.billed_share == pytest.approx(1.0, abs=0.03)
    assert finding.estimate_error is not None and finding.estimate_error < -0.15
    assert finding.config_line == 'billed_states = ["RUNNING", "IDLE", "INITIALIZING"]'


def test_a_bill_with_throttled_time_names_it() -> None:
    hours = [
        {**hour, THROTTLED: t} for hour, t in zip(HOURS, (30, 300, 15, 60, 600, 45, 120, 20), strict=True)
    ]
    billed = [sum(hour.values()) + 1 for hour in hours]

    finding = reconcile(billed, hours=hours)

    assert finding is not None and finding.state == THROTTLED and finding.billed_by_runpod
    assert finding.config_line == 'billed_states = ["RUNNING", "IDLE", "INITIALIZING", "THROTTLED"]'


# ------------------------------------------------------------------------------- and what is not one


def test_a_bill_that_agrees_gives_no_finding() -> None:
    assert reconcile(billed_as(DEFAULT)) is None
    assert reconcile(billed_as(WITHOUT_INIT), billed_states=WITHOUT_INIT) is None


def test_noisy_billing_gives_no_finding() -> None:
    # ±15-25 % per hour around the full estimate: about as many hours look like "no initializing" as not.
    factors = (0.8, 1.2, 0.85, 1.15, 0.75, 1.25, 0.8, 1.2)
    noisy = [seconds * factor for seconds, factor in zip(billed_as(DEFAULT), factors, strict=True)]
    assert reconcile(noisy) is None
    rng = random.Random(7)
    for _ in range(20):
        assert reconcile([s * rng.uniform(0.7, 1.3) for s in billed_as(DEFAULT)]) is None


def test_a_flat_difference_is_a_price_not_a_state() -> None:
    # The bill is 15 % below the estimate in every hour (a price cut the table has not caught up with):
    # most hours look like "no initializing" too, but a flat ratio explains it exactly.
    assert reconcile([0.85 * s for s in billed_as(DEFAULT, rounding_s=0)]) is None


def test_lagging_billing_gives_no_finding() -> None:
    # The last three buckets are still filling (RunPod's billing lags by hours): 30, 60 and 90 % of the
    # usage so far. Older hours agree.
    now = START + len(HOURS) * H + 60  # a minute after the last hour ended
    lagging = billed_as(DEFAULT)
    for index, share in zip((5, 6, 7), (0.9, 0.6, 0.3), strict=True):
        lagging[index] *= share
    assert reconcile(lagging, now=now) is None
    samples = usable_hours(state_rows(HOURS), fully_observed(), bills(lagging), now=now)
    assert [s.hour for s in samples] == [START + i * H for i in range(5)]  # the three are left out


def test_a_reading_waits_until_its_hours_are_final() -> None:
    # The same bill without the cold starts: three hours after the last one ends, six are final (a
    # finding); while only four are, nothing is said yet.
    too_early = START + len(HOURS) * H + 60
    assert reconcile(billed_as(WITHOUT_INIT), now=too_early) is None
    assert reconcile(billed_as(WITHOUT_INIT), now=AFTER) is not None


def test_too_few_hours_give_no_finding() -> None:
    assert reconcile(billed_as(WITHOUT_INIT)[:5], hours=HOURS[:5]) is None


def test_hours_the_estimate_did_not_fully_observe_are_left_out() -> None:
    # The daemon was down for 20 minutes in three hours: their estimate lacks time the bill has.
    observed = fully_observed()
    for index in (1, 3, 5):
        observed[START + index * H] = 2400.0
    assert reconcile(billed_as(WITHOUT_INIT), observed=observed) is None  # 5 complete hours: too few
    samples = usable_hours(state_rows(HOURS), observed, bills(billed_as(WITHOUT_INIT)), now=AFTER)
    assert [s.hour for s in samples] == [START + i * H for i in (0, 2, 4, 6, 7)]


def test_two_states_that_move_together_are_ambiguous() -> None:
    hours: list[dict[WorkerStatus, float]] = [
        {INIT: i, RUN: r, IDLE: i} for i, r in ((40, 200), (40, 60), (80, 400), (120, 900), (40, 120))
    ]
    hours += [{INIT: 80, RUN: 300, IDLE: 80}, {INIT: 40, RUN: 250, IDLE: 40}]
    assert reconcile([h[RUN] + h[IDLE] + 1 for h in hours], hours=hours) is None


def test_hours_older_than_the_window_are_not_looked_at() -> None:
    assert reconcile(billed_as(WITHOUT_INIT), now=START + WINDOW_S + 3 * H) is None


def test_an_hour_runpod_did_not_bill_counts_as_zero_once_later_hours_are_billed() -> None:
    # A worker crash-looped through its cold start and never became ready: no bucket for that hour.
    hours: list[dict[WorkerStatus, float]] = [*HOURS, {INIT: 90}, {RUN: 100}]
    records = bills(billed_as(WITHOUT_INIT))
    records.append(
        BillingRecord(START + 9 * H, START + 10 * H, EP, total_usd=100 * PRICE, gpu_usd=100 * PRICE)
    )
    samples = usable_hours(state_rows(hours), fully_observed(10), records, now=START + 13 * H)
    assert [(s.hour, s.billed_usd) for s in samples][8] == (START + 8 * H, 0.0)


def test_billing_records_that_cannot_be_set_against_an_hour_are_ignored() -> None:
    records = [
        *bills(billed_as(WITHOUT_INIT)),
        BillingRecord(START, START + 86_400, EP, total_usd=99.0, gpu_usd=99.0),  # a daily bucket
        BillingRecord(START, START + H, None, total_usd=99.0, gpu_usd=99.0),  # account-wide
    ]
    finding = reconcile_billed_states(
        state_rows(HOURS), fully_observed(), records, billed_states=DEFAULT, now=AFTER
    )
    assert finding is not None and finding.state == INIT


def test_the_gpu_amount_falls_back_to_the_total_less_the_other_meters() -> None:
    assert billed_gpu_usd(BillingRecord(START, START + H, EP, total_usd=1.0, gpu_usd=0.75)) == 0.75
    assert billed_gpu_usd(
        BillingRecord(START, START + H, EP, total_usd=1.0, cpu_usd=0.1, disk_usd=0.05, fee_usd=0.05)
    ) == pytest.approx(0.8)


# ----------------------------------------------------------------------------------------- the notice


def test_the_notice_names_the_state_the_evidence_and_the_config_line() -> None:
    finding = reconcile(billed_as(WITHOUT_INIT))
    assert finding is not None
    alert = billed_states_alert(finding, AFTER)

    assert alert.kind == AlertKind.BILLED_STATES and alert.severity == "info"
    assert alert.key == "billed_states:INITIALIZING-unbilled:2026-06-15"
    assert billed_states_alert(finding, AFTER + 3600).key == alert.key  # at most once a day
    assert billed_states_alert(finding, AFTER + 86_400).key != alert.key
    assert "leaves out INITIALIZING time" in alert.text
    assert "in 8 of 8 hours" in alert.text and "over-counts by 19%" in alert.text
    assert "2,945 GPU-s estimated, 2,473 billed" in alert.text
    assert alert.text.endswith('[prices] billed_states = ["RUNNING", "IDLE"]')
    noisy = billed_states_alert(dataclasses.replace(finding, billed_share=-0.02), AFTER)
    assert "it charged about 0% of the 480 GPU-s" in noisy.text  # a fit, shown within [0, 1]

    under = reconcile(billed_as(DEFAULT), billed_states=WITHOUT_INIT)
    assert under is not None
    warning = billed_states_alert(under, AFTER)
    assert warning.severity == "warning" and "under-counts" in warning.text
    assert warning.key == "billed_states:INITIALIZING-billed:2026-06-15"


# ------------------------------------------------------------------------------ config and the ledger


def test_the_default_billed_states_are_the_vocabularys() -> None:
    prices = default_config(env={}).prices
    assert prices.billed_state_set == BILLED_BY_DEFAULT
    assert prices.billed_states == (RUN, IDLE, INIT)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '["RUNNING", "INITIALISING"]',
            "prices.billed_states: must be one of 'RUNNING', 'IDLE', 'INITIALIZING', 'THROTTLED', "
            "'UNHEALTHY', got a string ('INITIALISING'); did you mean 'INITIALIZING'?",
        ),
        ('["RUNNING", "IDLE", "IDLE"]', "prices.billed_states: lists 'IDLE' more than once"),
        (
            '["IDLE"]',
            'prices.billed_states: must include "RUNNING" (every source agrees a worker running a job is '
            'billed), got an array ([\'IDLE\']); worker states are "RUNNING", "IDLE", "INITIALIZING", '
            '"THROTTLED", "UNHEALTHY"',
        ),
        ("[]", "prices.billed_states: must not be empty"),
    ],
)
def test_billed_states_are_validated_with_file_and_line(tmp_path: Path, value: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[budget]\nmonthly_eur = 20.0\n\n[prices]\nbilled_states = {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={}, check_files=False)
    assert str(raised.value) == f"{path}:5: {message}"


def test_accrue_keeps_every_states_seconds_and_the_hours_it_observed() -> None:
    workers = {
        EP: (
            Worker("w-cold", INIT, gpu_type_id="NVIDIA RTX A6000"),
            Worker("w-wait", THROTTLED, gpu_type_id="NVIDIA RTX A6000"),
            Worker("w-run", RUN, gpu_type_id="NVIDIA RTX A6000", gpu_count=2),
        )
    }
    accounting, _ = accrue(
        Accounting(),
        workers,
        now=START + H - 10,
        prices=DEFAULT_PRICES,
        billed_states=WITHOUT_INIT,
        stale_after_s=30,
    )
    _, accrued = accrue(
        accounting,
        workers,
        now=START + H + 10,
        prices=DEFAULT_PRICES,
        billed_states=WITHOUT_INIT,
        stale_after_s=30,
    )

    by_key = {(r.hour, r.state): (r.gpu_seconds, r.usd) for r in accrued.state_seconds}
    assert by_key[(START, "INITIALIZING")] == pytest.approx((10, 10 * PRICE))  # priced though not billed
    assert by_key[(START + H, "THROTTLED")] == pytest.approx((10, 10 * PRICE))
    assert by_key[(START + H, "RUNNING")] == pytest.approx((20, 20 * PRICE))
    assert accrued.observed == (ObservedSeconds(START, 10.0), ObservedSeconds(START + H, 10.0))
    assert sum(a.usd for a in accrued.estimates) == pytest.approx(40 * PRICE)  # RUNNING only is billed


def test_the_ledger_keeps_the_seconds_per_state_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with Ledger.open(path) as ledger:
        for end in (START + 1800, START + H + 600):
            start = ledger.last_accounted_at() or START
            ledger.record_tick(
                TickRecord(
                    started_at=end,
                    finished_at=end,
                    ok=True,
                    accounting=AccountingInterval(start, end),
                    estimates=(SpendAccrual(EP, START, 0.01, 30.0),),
                    state_seconds=(
                        StateSeconds(EP, START, "INITIALIZING", 40.0, 40 * PRICE),
                        StateSeconds(EP, START, "RUNNING", 30.0, 30 * PRICE),
                    ),
                    observed=(ObservedSeconds(START, end - start),),
                )
            )
    with Ledger.open(path) as ledger:
        rows = ledger.state_seconds_since(START)
        assert [(r.state, r.gpu_seconds) for r in rows] == [("INITIALIZING", 80.0), ("RUNNING", 60.0)]
        assert ledger.observed_seconds_since(START) == {START: H + 600}
        assert ledger.state_seconds_since(START + H) == []
        ledger.apply_retention(START + 40 * 86_400, 35, 400)
        assert ledger.state_seconds_since(START) == [] and ledger.observed_seconds_since(START) == {}


def test_the_ledger_refuses_seconds_per_state_without_their_interval(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
        with pytest.raises(LedgerError, match="accounting interval"):
            ledger.record_tick(
                TickRecord(START, START, ok=True, state_seconds=(StateSeconds(EP, START, "IDLE", 1, 1),))
            )
        with pytest.raises(LedgerError, match="outside the accounted interval"):
            ledger.record_tick(
                TickRecord(
                    START + 10,
                    START + 10,
                    ok=True,
                    accounting=AccountingInterval(START, START + 10),
                    observed=(ObservedSeconds(START + H, 10),),
                )
            )


# ----------------------------------------------------------------------------------- the simulator

JOBS_PER_HOUR = (
    (1, 31.4),
    (3, 19.7),
    (2, 58.2),
    (5, 24.9),
    (1, 15.3),
    (4, 41.1),
    (2, 9.6),
    (6, 28.8),
    (1, 50.5),
    (3, 44.2),
)
"""(jobs submitted together, seconds each) for each active hour: one cold start each, varied work. The
cold start (37.3 s) and the job lengths fall between the 5-second polls, and RunPod rounds each session up
to the second: the estimate is off by a few seconds each hour, as in life."""
SIM_HOURS = len(JOBS_PER_HOUR)


def _merge(pieces: Sequence[Accrued]) -> TickRecord:
    """Several polls' accruals as one ledger record (the test writes an hour at a time, not every poll)."""
    intervals = [p.interval for p in pieces if p.interval is not None]
    spend: dict[tuple[str, float], list[float]] = defaultdict(lambda: [0.0, 0.0])
    states: dict[tuple[str, float, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    observed: dict[float, float] = defaultdict(float)
    for piece in pieces:
        for a in piece.estimates:
            spend[(a.endpoint_id, a.hour)][0] += a.usd
            spend[(a.endpoint_id, a.hour)][1] += a.gpu_seconds
        for s in piece.state_seconds:
            states[(s.endpoint_id, s.hour, s.state)][0] += s.gpu_seconds
            states[(s.endpoint_id, s.hour, s.state)][1] += s.usd
        for o in piece.observed:
            observed[o.hour] += o.seconds
    end = intervals[-1].end
    return TickRecord(
        started_at=end,
        finished_at=end,
        ok=True,
        accounting=AccountingInterval(intervals[0].start, end),
        estimates=tuple(SpendAccrual(e, h, usd, s) for (e, h), (usd, s) in sorted(spend.items())),
        state_seconds=tuple(
            StateSeconds(e, h, st, s, usd) for (e, h, st), (s, usd) in sorted(states.items())
        ),
        observed=tuple(ObservedSeconds(h, s) for h, s in sorted(observed.items())),
    )


async def _live_a_day_and_reconcile(tmp_path: Path, options: SimOptions) -> BilledStatesFinding | None:
    """Ten active hours on the simulator, polled every 5 s through the product's client, accrued with the
    default billed states, written to a real ledger (closed and reopened half way: a restart), then
    reconciled with the simulator's hourly billing as REST v2 serves it."""
    clock = ManualClock(START)
    sim = Simulator(clock=clock, options=options, seed=3)
    sim.add_endpoint(
        SimEndpoint(
            id=EP,
            name="Translation LLM",
            gpu_ids="AMPERE_48",
            gpu_type_ids=("NVIDIA RTX A6000",),
            workers_max=1,
            idle_timeout=5,
            cold_start_s=37.3,
        )
    )

    async def no_sleep(_seconds: float) -> None:
        return None

    api = RunPodClient(
        api_key=DEFAULT_API_KEY,
        graphql_url=f"{SIM_BASE}/graphql",
        rest_url=f"{SIM_BASE}/v2",
        runtime_url=f"{SIM_BASE}/v2",
        transport=sim_transport(sim),
        sleep=no_sleep,
        rng=random.Random(1),
    )
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger.open(path)
    accounting = Accounting()
    pending: list[Accrued] = []
    end = START + (SIM_HOURS + 3) * H + 60
    async with api:
        while clock.now() < end:
            now = clock.now()
            offset = now - START
            hour_index, into_hour = divmod(offset, H)
            if into_hour == 600 and hour_index < SIM_HOURS:
                jobs, seconds = JOBS_PER_HOUR[int(hour_index)]
                for _ in range(jobs):
                    sim.submit(EP, {"sim": {"duration_s": seconds}})
            workers = (await api.list_workers(EP)).workers
            accounting, accrued = accrue(
                accounting,
                {EP: workers},
                now=now,
                prices=DEFAULT_PRICES,
                billed_states=BILLED_BY_DEFAULT,
                stale_after_s=30,
            )
            if accrued.interval is not None:
                pending.append(accrued)
            if into_hour == H - 5 and pending:
                ledger.record_tick(_merge(pending))
                pending = []
                if hour_index == SIM_HOURS // 2:  # the daemon restarts: only the ledger remembers
                    ledger.close()
                    ledger = Ledger.open(path)
            clock.advance(5)
        report = await api.serverless_billing(start=START, bucket_size="hour")
    try:
        now = clock.now()
        return reconcile_billed_states(
            ledger.state_seconds_since(now - WINDOW_S),
            ledger.observed_seconds_since(now - WINDOW_S),
            report.records,
            billed_states=BILLED_BY_DEFAULT,
            now=now,
        )
    finally:
        ledger.close()


async def test_the_simulator_billing_no_cold_starts_gives_the_finding(tmp_path: Path) -> None:
    finding = await _live_a_day_and_reconcile(tmp_path, SimOptions(bill_initializing=False))

    assert finding is not None
    assert finding.state == INIT and not finding.billed_by_runpod
    assert finding.hours == finding.telling_hours == SIM_HOURS
    assert finding.matching_hours >= 9
    assert finding.billed_share == pytest.approx(0.0, abs=0.1)
    assert finding.state_gpu_s == pytest.approx(37.3 * SIM_HOURS, abs=5 * SIM_HOURS)
    assert finding.config_line == 'billed_states = ["RUNNING", "IDLE"]'


async def test_the_simulator_billing_the_configured_states_gives_none(tmp_path: Path) -> None:
    assert await _live_a_day_and_reconcile(tmp_path, SimOptions(bill_initializing=True)) is None
