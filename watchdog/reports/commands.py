"""What the ``report``, ``compare``, ``whatif`` and ``checklist`` commands do once ``watchdog.cli`` has loaded
the configuration: open the ledger read-only, compute, print or write, and choose the exit code (0 done,
1 a failed check or an unreadable ledger, 2 bad usage). ``now`` and the output stream are parameters so
the tests run them on a simulated month.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from watchdog.clock import SystemClock, from_iso, month_start
from watchdog.config import Config, Secrets
from watchdog.reports.chart import EXTRA_HINT, spend_chart
from watchdog.reports.checklist import ChecklistError, run_checklist_command
from watchdog.reports.month import month_figures, parse_month
from watchdog.reports.providers import compare_text, measured_month
from watchdog.reports.render import eur, write_report
from watchdog.reports.source import ReportLedger
from watchdog.reports.whatif import WhatIfError, parse_batch_times, parse_speeds, whatif_text


def _now(now: float | None) -> float:
    return SystemClock().now() if now is None else now


def _until(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return from_iso(text if "T" in text else f"{text}T00:00:00Z")
    except ValueError:
        raise WhatIfError(f"--until {text!r}: expected YYYY-MM-DD or an ISO time") from None


def run_report(
    config: Config,
    *,
    month: str,
    fmt: str,
    out_dir: str | Path,
    now: float | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    try:
        start = parse_month(month)
    except ValueError as exc:
        print(f"runpod-watchdog report: {exc}", file=sys.stderr)
        return 2
    with ReportLedger.open(config.ledger.resolved_path) as ledger:
        figures = month_figures(ledger, config, start, now=_now(now))
    chart = spend_chart(figures) if fmt in ("md", "html") else None
    written = write_report(figures, fmt, Path(out_dir), chart)
    for path in written:
        print(path, file=out)
    print(
        f"{figures.month}: {eur(figures.eur(figures.total_usd))} spent of {eur(figures.budget_eur)} "
        f"({figures.requests:,} requests, {figures.billed_hours} billed hours, "
        f"{figures.estimate_hours} estimated only)",
        file=out,
    )
    if chart is None and fmt in ("md", "html"):
        print(f"no chart: matplotlib is not installed ({EXTRA_HINT})", file=sys.stderr)
    return 0


def run_compare(
    config: Config,
    *,
    requests: int | None,
    seconds: float | None,
    gpu: str | None,
    month: str | None,
    now: float | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    if (requests is not None and requests < 0) or (seconds is not None and seconds <= 0):
        print("runpod-watchdog compare: --requests must be >= 0 and --seconds > 0", file=sys.stderr)
        return 2
    try:
        start = parse_month(month) if month else month_start(_now(now))
    except ValueError as exc:
        print(f"runpod-watchdog compare: {exc}", file=sys.stderr)
        return 2
    measured = None
    path = config.ledger.resolved_path
    if path.is_file():
        with ReportLedger.open(path) as ledger:
            measured = measured_month(ledger, config, start, now=_now(now))
    try:
        text = compare_text(config, requests=requests, seconds=seconds, gpu=gpu, measured=measured)
    except ValueError as exc:
        print(f"runpod-watchdog compare: {exc}", file=sys.stderr)
        return 2
    print(text, file=out)
    return 0


def run_whatif(
    config: Config, args: argparse.Namespace, *, now: float | None = None, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    try:
        speeds = parse_speeds(args.speed, config.price_table)
        batch_times = parse_batch_times(args.batch_times)
        if args.days <= 0:
            raise WhatIfError("--days must be > 0")
        for name in ("max_wait_p95", "cold_start_s", "baseline_cold_start_s", "exec_s"):
            value = getattr(args, name)
            if value is not None and value < 0:
                raise WhatIfError(f"--{name.replace('_', '-')} must be >= 0")
        until = _until(getattr(args, "until", None))
        with ReportLedger.open(config.ledger.resolved_path) as ledger:
            text = whatif_text(
                ledger,
                config,
                endpoint=args.endpoint,
                days=args.days,
                now=until if until is not None else _now(now),
                max_wait_p95_s=args.max_wait_p95,
                flashboot_cold_start_s=args.cold_start_s,
                baseline_cold_start_s=args.baseline_cold_start_s,
                exec_s=args.exec_s,
                speeds=speeds,
                batch_times_s=batch_times,
            )
    except WhatIfError as exc:
        print(f"runpod-watchdog whatif: {exc}", file=sys.stderr)
        return 2
    print(text, file=out)
    return 0


def run_checklist(
    config: Config,
    secrets: Secrets,
    args: argparse.Namespace,
    *,
    now: float | None = None,
    out: TextIO | None = None,
    transport: object | None = None,
) -> int:
    out = out or sys.stdout
    try:
        return run_checklist_command(config, secrets, args, now=_now(now), out=out, transport=transport)
    except ChecklistError as exc:
        print(f"runpod-watchdog checklist: {exc}", file=sys.stderr)
        return 2
