"""The month's report as Markdown, HTML or CSV, written for a treasurer rather than an engineer.

The content is built once as a list of blocks (headings, paragraphs, bullet lists, tables) and rendered
to Markdown or HTML, so the two never say different things. Euros throughout (at ``budget.usd_per_eur``);
dollars only where RunPod's bill is quoted, and then labelled.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from watchdog.reports.chart import EXTRA_HINT, Chart
from watchdog.reports.month import MonthFigures, month_title


@dataclass(frozen=True, slots=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True, slots=True)
class Para:
    text: str


@dataclass(frozen=True, slots=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[int, ...] = ()
    """Column indexes aligned right."""


@dataclass(frozen=True, slots=True)
class ChartSlot:
    alt: str


Block = Heading | Para | Bullets | Table | ChartSlot

RULE_WORDS = {
    "runaway_job": "a job ran far too long",
    "crash_loop": "workers kept crashing",
    "idle_leak": "a worker stayed on with nothing to do",
    "budget_brake": "the budget was nearly spent",
    "suspicious_traffic": "suspicious traffic",
    "config_drift": "a risky endpoint setting",
    "manual": "a person acted from the dashboard",
    "blind": "the watchdog could not see RunPod",
}


def eur(value: float) -> str:
    return f"{value:,.2f} €"


def usd(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.0f} %"


def report_blocks(f: MonthFigures) -> list[Block]:
    """Everything the report says, in order."""
    e = f.eur
    title = month_title(f.start)
    status = (
        f"the whole month (figures final up to {_when(f.end)})"
        if f.complete
        else f"the month so far, up to {_when(f.as_of)}"
    )
    blocks: list[Block] = [
        Heading(f"GPU spending report: {title}", 1),
        Para(f"RunPod Serverless and fixed costs against the monthly budget, for {status}."),
        Heading("In short"),
    ]
    cost_1000 = f.cost_per_1000_usd
    short = [
        f"Spent **{eur(e(f.total_usd))}** of the **{eur(f.budget_eur)}** budget ({_pct(f.used_ratio)}): "
        f"{eur(e(f.fixed_usd))} of fixed costs and {eur(e(f.variable_usd))} of GPU time on RunPod.",
        f"**{f.requests:,}** requests served"
        + (
            f", **{eur(e(cost_1000))} per 1,000 requests** (RunPod's bill: {usd(cost_1000)} per 1,000; the "
            f"team's alert level is {usd(f.cost_per_1000_alert_usd)})."
            if cost_1000 is not None
            else "."
        ),
        f"Requests offered free to learners ({_pct(f.free_share)}, "
        f"{'measured from the request logs' if f.free_share_measured else 'the configured share'}) "
        f"cost **{eur(e(f.subsidy_usd))}**: the subsidy.",
        _savings_sentence(f),
        f"Next month ({f.next_month}), at this month's daily rate: about "
        f"**{eur(e(f.forecast_next_month_usd))}**.",
    ]
    blocks.append(Bullets(tuple(short)))

    blocks += [
        Heading("Spending against the budget"),
        ChartSlot(f"Cumulative spending in {title} against the budget"),
    ]
    rows = [(name, eur(e(cost)), f"fixed monthly price ({usd(cost)})") for name, cost in f.fixed_costs]
    basis = _basis_words(f)
    rows.append(("RunPod GPU time (variable)", eur(e(f.variable_usd)), basis))
    rows.append(("**Total spent**", f"**{eur(e(f.total_usd))}**", _pct(f.used_ratio) + " of the budget"))
    left = f.budget_eur - e(f.total_usd)
    rows.append(("Budget", eur(f.budget_eur), f"{eur(left)} left" if left >= 0 else f"over by {eur(-left)}"))
    if not f.complete:
        rows.append(
            (
                "End of month (forecast)",
                eur(e(f.end_of_month_usd)),
                "at this month's daily rate, fixed costs included",
            )
        )
    blocks.append(Table(("", "euros", "how it is counted"), tuple(rows), numeric=(1,)))

    blocks.append(Heading("Per endpoint"))
    endpoint_rows = []
    for ep in f.endpoints:
        per_1000 = ep.cost_per_1000_usd
        endpoint_rows.append(
            (
                f"{ep.name} (`{ep.endpoint_id}`)"
                if ep.name and ep.endpoint_id
                else ep.name or f"`{ep.endpoint_id}`",
                f"{ep.requests:,}",
                eur(e(ep.usd)),
                eur(e(per_1000)) if per_1000 is not None else "-",
                f"{ep.cold_starts:,}",
            )
        )
    if endpoint_rows:
        blocks.append(
            Table(
                ("endpoint", "requests", "spent", "per 1,000 requests", "cold starts"),
                tuple(endpoint_rows),
                numeric=(1, 2, 3, 4),
            )
        )
    else:
        blocks.append(Para("No endpoint spent anything or received requests this month."))

    blocks += [
        Heading("Requests offered free (the subsidy)"),
        Para(
            f"About {f.free_requests:,} of the {f.requests:,} requests were offered free "
            f"({_pct(f.free_share)}, "
            + (
                "measured from the tier the request logs carry"
                if f.free_share_measured
                else "the configured share `budget.free_share`: the logs carried no tier this month"
            )
            + f"). Their share of the GPU spending is **{eur(e(f.subsidy_usd))}**."
        ),
        Heading("Cold starts"),
    ]
    cold_rows = []
    for ep in f.endpoints:
        if not ep.cold_starts:
            continue
        cold_rows.append(
            (
                ep.name or ep.endpoint_id,
                f"{ep.cold_starts:,}",
                _seconds(ep.cold_start_p50_s),
                _seconds(ep.cold_start_p95_s),
                f"{ep.cold_start_s / 3600:,.1f} h",
            )
        )
    if cold_rows:
        blocks.append(
            Para(
                "Each time a worker starts from nothing it loads the model first (a cold start), and that "
                "time "
                f"is billed. The team's target is under {f.cold_start_target_s:g} s. Seconds are measured at "
                "the "
                "watchdog's polling resolution."
            )
        )
        blocks.append(
            Table(
                ("endpoint", "cold starts", "typical (p50)", "slow (p95)", "time starting"),
                tuple(cold_rows),
                (1, 2, 3, 4),
            )
        )
    else:
        blocks.append(Para("No worker start was recorded this month."))

    blocks.append(Heading("Incidents and what the watchdog saved"))
    if f.incidents:
        incident_rows = tuple(
            (
                _when(i.at),
                i.endpoint_id or "(account)",
                f"{RULE_WORDS.get(i.rule, i.rule)}: {i.action.replace('_', ' ')}",
                "acted" if i.mode == "enforce" else "proposed only (dry-run)",
                i.outcome.replace("_", " "),
                eur(e(i.saved_usd)) if i.saved_usd else "-",
            )
            for i in f.incidents
        )
        blocks.append(
            Table(("when", "endpoint", "what happened", "watchdog", "outcome", "saved"), incident_rows, (5,))
        )
    else:
        blocks.append(Para("No incident: the watchdog had nothing to do this month."))
    blocks.append(Para(_savings_sentence(f)))
    blocks.append(Para(f"Alerts raised: {f.alerts} ({f.alerts_sent} delivered)."))

    blocks.append(Heading("The estimate and RunPod's bill"))
    drift = f.drift_ratio
    blocks.append(
        Bullets(
            (
                f"Hours counted from RunPod's bill: {f.billed_hours:,} (bill: {usd(f.billed_usd)}).",
                f"Hours counted from the watchdog's live estimate, not billed yet: {f.estimate_hours:,} "
                f"(estimate: {usd(f.estimate_only_usd)}).",
                (
                    f"On the billed hours the estimate said {usd(f.estimate_on_billed_usd)}; the bill "
                    "differs by "
                    f"{usd(f.drift_usd)} ({drift * 100:+.2f} %)."
                    if drift is not None
                    else "No hour was billed yet: every figure is the live estimate."
                ),
            )
        )
    )

    blocks += [
        Heading(f"Forecast for {f.next_month}"),
        Para(
            f"This month's GPU spending averaged {eur(e(f.daily_rate_usd))} a day over "
            f"{f.days_elapsed:.1f} days. At that rate, {f.next_month} ({f.next_month_days} days) would cost "
            f"about **{eur(e(f.forecast_next_month_usd))}** with the fixed costs, against a budget of "
            f"{eur(f.budget_eur)}. This is a straight extrapolation of this month: it does not foresee "
            "changes "
            "in traffic."
        ),
        Heading("How these figures are made"),
        Bullets(
            (
                "Every figure comes from the runpod-watchdog ledger, which records each poll of RunPod "
                "(workers, jobs, request counts, RunPod's hourly billing) and every action.",
                "For each endpoint and hour, RunPod's bill counts where RunPod has billed the hour; the "
                "watchdog's live estimate counts only for hours not billed yet.",
                f"Dollars are converted once, at {f.usd_per_eur:g} USD for 1 euro (`budget.usd_per_eur`).",
                "Fixed costs count in full from the first of the month.",
                "Savings: money the watchdog saved by acting (enforce), or would have saved had it acted "
                "(dry-run), as it estimated at the time.",
            )
        ),
    ]
    return blocks


def _savings_sentence(f: MonthFigures) -> str:
    e = f.eur
    parts = []
    if f.saved_enforce_usd:
        parts.append(f"the watchdog saved **{eur(e(f.saved_enforce_usd))}** by acting")
    if f.saved_dry_run_usd:
        parts.append(
            f"it would have saved **{eur(e(f.saved_dry_run_usd))}** more had it acted (dry-run: proposals "
            "only)"
        )
    if not parts:
        return "The watchdog saved nothing this month: nothing needed stopping."
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _basis_words(f: MonthFigures) -> str:
    if f.billed_hours and not f.estimate_hours:
        return f"RunPod's bill ({usd(f.variable_usd)})"
    if f.billed_hours:
        return (
            f"RunPod's bill for {f.billed_hours:,} hours ({usd(f.billed_usd)}), the live estimate for "
            f"{f.estimate_hours:,} hours not billed yet ({usd(f.estimate_only_usd)})"
        )
    if f.estimate_hours:
        return f"the live estimate (no hour billed yet): {usd(f.variable_usd)}"
    return "nothing recorded"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


# ------------------------------------------------------------------------------------------------------------
# Markdown


def to_markdown(blocks: Sequence[Block], chart_file: str | None) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            out += [block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            align = ["---:" if i in block.numeric else "---" for i in range(len(block.headers))]
            out.append("| " + " | ".join(block.headers) + " |")
            out.append("|" + "|".join(align) + "|")
            out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in block.rows]
            out.append("")
        elif chart_file:
            out += [f"![{block.alt}]({chart_file})", ""]
        else:
            out += [f"_(Chart not drawn: matplotlib is not installed; `{EXTRA_HINT}` adds it.)_", ""]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #d0d7de; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; white-space: nowrap; }
code { font-size: 0.9em; background: #f6f8fa; padding: 0 0.2em; }
figure { margin: 1rem 0; } figure svg { max-width: 100%; height: auto; }
"""


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    escaped = re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)
    return re.sub(r"(?<![\w*])_(.+?)_(?![\w*])", r"<em>\1</em>", escaped)


def _inline_svg(svg: str) -> str:
    """The SVG element alone (no XML declaration or DOCTYPE), to sit inside the HTML document."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def to_html(blocks: Sequence[Block], chart: Chart | None, title: str) -> str:
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):

            def cls(i: int, table: Table = block) -> str:
                return ' class="num"' if i in table.numeric else ""

            head = "".join(f"<th{cls(i)}>{_inline(h)}</th>" for i, h in enumerate(block.headers))
            rows = "".join(
                "<tr>" + "".join(f"<td{cls(i)}>{_inline(cell)}</td>" for i, cell in enumerate(row)) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif chart is not None:
            body.append(
                f'<figure id="spend-chart" aria-label="{html.escape(block.alt)}">'
                f"{_inline_svg(chart.svg)}</figure>"
            )
        else:
            body.append(
                f"<p><em>(Chart not drawn: matplotlib is not installed; <code>{EXTRA_HINT}</code>.)</em></p>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# ------------------------------------------------------------------------------------------------------------
# CSV


def summary_rows(f: MonthFigures) -> list[tuple[str, str, str, str]]:
    """(figure, value, unit, how it is counted) rows: the summary CSV."""
    e = f.eur

    def money(value: float) -> str:
        return f"{value:.2f}"

    rows = [
        ("month", f.month, "", "complete" if f.complete else f"up to {_when(f.as_of)}"),
        ("budget", money(f.budget_eur), "EUR", "budget.monthly_eur"),
        ("usd_per_eur", f"{f.usd_per_eur:g}", "USD", "budget.usd_per_eur"),
        ("fixed_costs", money(e(f.fixed_usd)), "EUR", "budget.fixed_costs, in full from the 1st"),
        ("runpod_variable", money(e(f.variable_usd)), "EUR", "bill where billed, estimate otherwise"),
        ("total_spent", money(e(f.total_usd)), "EUR", "fixed + variable"),
        ("budget_used", f"{f.used_ratio:.4f}", "ratio", "total / budget"),
        ("requests", str(f.requests), "requests", "request logs and /health counters"),
        (
            "cost_per_1000_requests",
            money(e(f.cost_per_1000_usd)) if f.cost_per_1000_usd is not None else "",
            "EUR",
            "variable / requests x 1000",
        ),
        (
            "cost_per_1000_requests_usd",
            money(f.cost_per_1000_usd) if f.cost_per_1000_usd is not None else "",
            "USD",
            "RunPod's currency (alert above the configured level)",
        ),
        ("free_share", f"{f.free_share:.4f}", "ratio", "measured" if f.free_share_measured else "configured"),
        ("free_requests_cost", money(e(f.subsidy_usd)), "EUR", "variable x free share"),
        ("cold_starts", str(f.cold_starts), "starts", "worker sessions started"),
        ("saved_enforce", money(e(f.saved_enforce_usd)), "EUR", "actions applied"),
        ("saved_dry_run", money(e(f.saved_dry_run_usd)), "EUR", "actions proposed in dry-run"),
        ("incidents", str(len(f.incidents)), "decisions", "decisions table"),
        ("billed_hours", str(f.billed_hours), "hours", "endpoint-hours counted from RunPod's bill"),
        ("estimate_only_hours", str(f.estimate_hours), "hours", "endpoint-hours not billed yet"),
        ("billed_usd", money(f.billed_usd), "USD", "RunPod's bill for the billed hours"),
        ("estimate_only_usd", money(f.estimate_only_usd), "USD", "live estimate for the other hours"),
        ("drift_usd", f"{f.drift_usd:.4f}", "USD", "bill - estimate on the billed hours"),
        (
            "forecast_next_month",
            money(e(f.forecast_next_month_usd)),
            "EUR",
            f"{f.next_month}, this month's daily rate",
        ),
    ]
    for ep in f.endpoints:
        rows.append((f"endpoint:{ep.endpoint_id or 'account'}:spent", money(e(ep.usd)), "EUR", ep.name))
        rows.append(
            (f"endpoint:{ep.endpoint_id or 'account'}:requests", str(ep.requests), "requests", ep.name)
        )
    return rows


def daily_rows(f: MonthFigures) -> list[tuple[str, ...]]:
    """One row per day: the daily CSV (and the chart's data)."""
    e = f.eur
    return [
        (
            p.day,
            f"{e(p.variable_usd):.4f}",
            f"{p.variable_usd:.4f}",
            f"{e(p.cumulative_usd):.4f}",
            f"{f.budget_eur:.2f}",
            p.basis,
        )
        for p in f.days
    ]


DAILY_HEADER = ("day", "runpod_eur", "runpod_usd", "cumulative_eur", "budget_eur", "basis")


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------------------
# Files


def write_report(f: MonthFigures, fmt: str, out_dir: Path, chart: Chart | None) -> list[Path]:
    """Write the report in ``fmt`` (md, html or csv) into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"report-{f.month}"
    blocks = report_blocks(f)
    written: list[Path] = []
    if fmt == "md":
        chart_name = None
        if chart is not None:
            chart_path = out_dir / f"{stem}-spend.png"
            chart_path.write_bytes(chart.png)
            (out_dir / f"{stem}-spend.svg").write_text(chart.svg, encoding="utf-8")
            written += [chart_path, out_dir / f"{stem}-spend.svg"]
            chart_name = chart_path.name
        path = out_dir / f"{stem}.md"
        path.write_text(to_markdown(blocks, chart_name), encoding="utf-8")
        written.insert(0, path)
    elif fmt == "html":
        path = out_dir / f"{stem}.html"
        path.write_text(
            to_html(blocks, chart, f"GPU spending report: {month_title(f.start)}"), encoding="utf-8"
        )
        written.append(path)
    elif fmt == "csv":
        summary = out_dir / f"{stem}-summary.csv"
        summary.write_text(_csv_text(("figure", "value", "unit", "how"), summary_rows(f)), encoding="utf-8")
        daily = out_dir / f"{stem}-daily.csv"
        daily.write_text(_csv_text(DAILY_HEADER, daily_rows(f)), encoding="utf-8")
        written += [summary, daily]
    else:
        raise ValueError(f"unknown format {fmt!r} (md, html or csv)")
    return written
