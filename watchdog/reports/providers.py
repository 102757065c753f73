"""The seed's provider comparison, recomputed (``runpod-watchdog compare``).

The seed compared a month of its traffic (3,000 requests × 8.5 GPU-seconds) on a T4 rented 720 hours at
AWS, Azure and Hugging Face with RunPod Serverless billed by the second (October 2025 list prices):

=====================================  ==============  ================  =====================
platform                               monthly (USD)   per 1,000 (USD)   arithmetic
=====================================  ==============  ================  =====================
AWS EC2 g4dn.xlarge                    378.72          126.24            720 h × 0.526
Azure VM NC4as T4 v3                   378.72          126.24            720 h × 0.526
Hugging Face Inference Endpoints T4    360.00          120.00            720 h × 0.50
RunPod flex RTX A6000                  8.67            2.89              3,000 × 8.5 s × 0.00034
=====================================  ==============  ================  =====================

(per 1,000 = monthly ÷ 3). Here the dedicated offers are :data:`DEDICATED_OFFERS` (the seed's prices, in
this one place), RunPod's prices come from the configuration (``[[prices.gpu]]``), and the traffic is the
measured month (requests, mean execution seconds from the ledger's jobs) unless given. Beside the seed's
execution-only arithmetic it shows what that table leaves out, from the measured month: cold starts, idle
tails and per-session rounding, so the RunPod line is the real bill.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.config import Config
from watchdog.money import usd_to_eur
from watchdog.prices import GpuPrice, PriceTable
from watchdog.reports.month import MonthFigures, month_figures
from watchdog.reports.source import ReportLedger

SEED_REQUESTS = 3000
"""The seed's month: about three thousand requests..."""
SEED_SECONDS = 8.5
"""...of about 8.5 GPU-seconds each."""
HOURS_PER_MONTH = 720
"""A rented instance is paid 720 hours a month (the seed's "720 heures payees"; RunPod's 30-day unit too)."""
DEFAULT_GPU = "NVIDIA RTX A6000"
"""The seed's production GPU (its RunPod row), used when neither ``--gpu`` nor the ledger names one."""


@dataclass(frozen=True, slots=True)
class DedicatedOffer:
    provider: str
    instance: str
    gpu: str
    usd_per_hour: float


# CONFIG CANDIDATE: these are the seed's October 2025 list prices, kept here in ONE place until they become
# configuration. Proposed: a `[[compare.dedicated]]` table array in config.py/config.toml with the fields
# `provider` (str, required), `instance` (str, required), `gpu` (str, required) and `usd_per_hour`
# (float, > 0, required), defaulting to exactly these three entries.
DEDICATED_OFFERS: tuple[DedicatedOffer, ...] = (
    DedicatedOffer("AWS EC2", "g4dn.xlarge", "T4", 0.526),
    DedicatedOffer("Azure VM", "NC4as T4 v3", "T4", 0.526),
    DedicatedOffer("Hugging Face Inference Endpoints", "", "T4", 0.50),
)


@dataclass(frozen=True, slots=True)
class Traffic:
    requests: int
    seconds: float
    """GPU-seconds of execution per request."""
    source: str
    """Where the two numbers come from, in words."""


@dataclass(frozen=True, slots=True)
class Measured:
    """A month as the ledger recorded it, for the RunPod endpoints that served requests."""

    month: str
    figures: MonthFigures
    requests: int
    mean_execution_s: float | None
    execution_source: str
    bill_usd: float
    cold_start_s: float
    idle_s: float
    running_s: float
    sessions: int
    gpu_type_id: str | None


@dataclass(frozen=True, slots=True)
class Row:
    provider: str
    gpu: str
    billing: str
    monthly_usd: float
    requests: int

    @property
    def per_1000_usd(self) -> float | None:
        return self.monthly_usd * 1000.0 / self.requests if self.requests else None


def dedicated_rows(requests: int) -> list[Row]:
    return [
        Row(
            f"{offer.provider} {offer.instance}".strip(),
            offer.gpu,
            f"{HOURS_PER_MONTH} paid hours × ${offer.usd_per_hour:g}",
            HOURS_PER_MONTH * offer.usd_per_hour,
            requests,
        )
        for offer in DEDICATED_OFFERS
    ]


def flex_usd(traffic: Traffic, price: GpuPrice) -> float:
    """The seed's arithmetic: requests × seconds × the flex price per second (execution only)."""
    return traffic.requests * traffic.seconds * price.flex_usd_per_s


def active_usd(price: GpuPrice) -> float:
    """One active worker all month: 720 hours at the active price."""
    return HOURS_PER_MONTH * 3600 * price.active_usd_per_s


def find_gpu(prices: PriceTable, name: str) -> GpuPrice:
    """The price-table entry ``name`` designates: its exact id, else the one whose id contains ``name`` as
    a word (case-insensitive, e.g. "A6000", "rtx a4000", "L4"), else its pool id. ValueError otherwise."""
    for gpu in prices.gpus:
        if gpu.gpu_type_id.lower() == name.lower():
            return gpu
    pattern = re.compile(rf"(?<![\w]){re.escape(name)}(?![\w])", re.IGNORECASE)
    matches = [g for g in prices.gpus if pattern.search(g.gpu_type_id)]
    if len(matches) == 1:
        return matches[0]
    pools = [g for g in prices.gpus if g.pool.lower() == name.lower()]
    if pools:
        return pools[0]
    known = ", ".join(g.gpu_type_id for g in prices.gpus)
    if matches:
        raise ValueError(f"--gpu {name!r} is ambiguous: {', '.join(g.gpu_type_id for g in matches)}")
    raise ValueError(f"no GPU type {name!r} in the price table ({known})")


def measured_month(ledger: ReportLedger, config: Config, start: float, *, now: float) -> Measured | None:
    """The month's measured traffic and bill (None when the ledger has no request in that month)."""
    figures = month_figures(ledger, config, start, now=now)
    serving = [e for e in figures.endpoints if e.requests > 0]
    requests = sum(e.requests for e in serving)
    if requests == 0:
        return None
    timed = [e for e in serving if e.mean_execution_s is not None and e.jobs_timed]
    running = sum(e.running_s for e in serving)
    if timed:
        jobs = sum(e.jobs_timed for e in timed)
        mean = sum((e.mean_execution_s or 0.0) * e.jobs_timed for e in timed) / jobs
        source = f"the mean execution time of {jobs:,} jobs the ledger recorded"
    elif running > 0:
        mean = running / requests
        source = "worker running seconds ÷ requests (no job recorded an execution time)"
    else:
        mean = None
        source = "unknown (no job timing and no worker running time recorded)"
    sessions = ledger.sessions(figures.start, figures.end)
    gpu_counts = Counter(s.gpu_type_id for s in sessions if s.gpu_type_id)
    return Measured(
        month=figures.month,
        figures=figures,
        requests=requests,
        mean_execution_s=mean,
        execution_source=source,
        bill_usd=sum(e.usd for e in serving),
        cold_start_s=sum(e.cold_start_s for e in serving),
        idle_s=sum(e.idle_s for e in serving),
        running_s=running,
        sessions=sum(e.cold_starts for e in serving),
        gpu_type_id=gpu_counts.most_common(1)[0][0] if gpu_counts else None,
    )


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f} USD"


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], right: tuple[int, ...]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def compare_text(
    config: Config,
    *,
    requests: int | None,
    seconds: float | None,
    gpu: str | None,
    measured: Measured | None,
) -> str:
    """The comparison as text (ValueError for an unknown ``gpu``)."""
    prices = config.price_table
    if requests is not None and seconds is not None:
        traffic = Traffic(requests, seconds, "given")
    elif measured is not None and measured.mean_execution_s is not None:
        traffic = Traffic(
            requests if requests is not None else measured.requests,
            seconds if seconds is not None else measured.mean_execution_s,
            f"measured in {measured.month}"
            + (" (partly given)" if requests is not None or seconds is not None else ""),
        )
    else:
        traffic = Traffic(
            requests if requests is not None else SEED_REQUESTS,
            seconds if seconds is not None else SEED_SECONDS,
            "the seed's figures (nothing measured in the ledger for that month)",
        )
    chosen = find_gpu(prices, gpu) if gpu else None
    main_gpu = chosen or (
        prices.lookup(measured.gpu_type_id)
        if measured is not None and measured.gpu_type_id and prices.knows(measured.gpu_type_id)
        else find_gpu(prices, DEFAULT_GPU)
    )
    rate = config.budget.usd_per_eur
    out = [
        f"Provider comparison for {traffic.requests:,} requests a month × {traffic.seconds:.4g} GPU-seconds "
        "each "
        f"({traffic.source}).",
        "Dedicated prices: the seed's October 2025 list prices; RunPod: the configured price table. USD as "
        f"billed; euros at {rate:g} USD/EUR.",
        "",
    ]
    rows = dedicated_rows(traffic.requests)
    rows.append(
        Row(
            "RunPod serverless flex",
            main_gpu.gpu_type_id.removeprefix("NVIDIA "),
            f"per second × ${main_gpu.flex_usd_per_s:g} (execution only)",
            flex_usd(traffic, main_gpu),
            traffic.requests,
        )
    )
    table = [
        (
            r.provider,
            r.gpu,
            r.billing,
            _money(r.monthly_usd),
            f"{usd_to_eur(r.monthly_usd, rate):,.2f} €",
            _money(r.per_1000_usd),
        )
        for r in rows
    ]
    out += _table(
        ("platform", "GPU", "billing", "per month", "≈ euros", "per 1,000 requests"), table, (3, 4, 5)
    )

    gpus = [chosen] if chosen else sorted(prices.gpus, key=lambda g: (g.flex_usd_per_s, g.gpu_type_id))
    out += [
        "",
        "RunPod serverless per GPU type (flex: execution seconds only; active: one worker all month):",
    ]
    gpu_rows = []
    for price in gpus:
        flex = flex_usd(traffic, price)
        active = active_usd(price)
        gpu_rows.append(
            (
                price.gpu_type_id,
                _money(flex),
                _money(flex * 1000 / traffic.requests if traffic.requests else None),
                _money(active),
                _money(active * 1000 / traffic.requests if traffic.requests else None),
            )
        )
    out += _table(
        ("GPU type", "flex / month", "flex / 1,000", "active / month", "active / 1,000"),
        gpu_rows,
        (1, 2, 3, 4),
    )

    out += ["", "What the seed's table leaves out:"]
    if measured is None:
        out.append(
            "  nothing measured for that month in the ledger: the RunPod line above counts execution seconds "
            "only. A real bill adds a cold start per worker start, the idle tail after each request and "
            "rounding up to the second per worker session (see runpod-watchdog report)."
        )
        return "\n".join(out)
    out.extend(_overheads(measured, traffic, main_gpu, rate))
    return "\n".join(out)


def _overheads(measured: Measured, traffic: Traffic, price: GpuPrice, rate: float) -> list[str]:
    gpu_price = price.flex_usd_per_s
    requests = measured.requests
    execution_usd = requests * (measured.mean_execution_s or 0.0) * gpu_price
    cold_usd = measured.cold_start_s * gpu_price
    idle_usd = measured.idle_s * gpu_price
    other_usd = measured.bill_usd - execution_usd - cold_usd - idle_usd
    lines = [
        f"  measured in {measured.month}: {requests:,} requests, {measured.mean_execution_s or 0:.2f} s each "
        f"({measured.execution_source}), {measured.sessions:,} worker starts on "
        f"{(measured.gpu_type_id or price.gpu_type_id).removeprefix('NVIDIA ')}.",
    ]
    rows = [
        ("execution (the seed's arithmetic)", _money(execution_usd)),
        (f"cold starts ({measured.cold_start_s / 3600:,.1f} h)", _money(cold_usd)),
        (f"idle tails ({measured.idle_s / 3600:,.1f} h)", _money(idle_usd)),
        ("rounding per session, disk, fees, drift", _money(other_usd)),
        ("RunPod's real bill", _money(measured.bill_usd)),
    ]
    lines += ["  " + line for line in _table(("part of the bill", "USD"), rows, (1,))]
    per_1000 = measured.bill_usd * 1000 / requests
    lines.append(
        f"  The real bill is {_money(measured.bill_usd)} ({usd_to_eur(measured.bill_usd, rate):,.2f} €), "
        f"{_money(per_1000)} per 1,000 requests, {measured.bill_usd / execution_usd:.1f}× the execution-only "
        "figure."
        if execution_usd > 0
        else f"  The real bill is {_money(measured.bill_usd)}."
    )
    if (traffic.requests, traffic.seconds) != (requests, measured.mean_execution_s):
        overhead_per_request = (measured.bill_usd - execution_usd) / requests
        scaled = traffic.requests * (traffic.seconds * gpu_price + overhead_per_request)
        lines.append(
            f"  With {traffic.requests:,} requests × {traffic.seconds:g} s and this month's overheads per "
            "request "
            f"({_money(overhead_per_request)}), RunPod flex on {price.gpu_type_id.removeprefix('NVIDIA ')} "
            "would "
            f"bill about {_money(scaled)} "
            f"({_money(scaled * 1000 / traffic.requests if traffic.requests else None)}"
            " per 1,000 requests)."
        )
    return lines
