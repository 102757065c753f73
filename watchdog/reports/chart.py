"""The month's chart: daily cumulative spend (fixed costs from the 1st, then RunPod) against the budget.

Drawn with matplotlib (the ``report`` extra: ``pip install 'runpod-watchdog[report]'``), imported here only,
and only when a chart is asked for, so the daemon's install stays lean and a report without matplotlib still
has every figure (the chart is then left out, with a note saying how to get it). The SVG is deterministic
(no timestamp, fixed ids) and its elements carry ids a browser test can find: ``cumulative-spend`` (one
marker per day), ``budget-line`` and, for a month still running, ``projection``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from watchdog.reports.month import MonthFigures, month_title

EXTRA_HINT = "pip install 'runpod-watchdog[report]'"


@dataclass(frozen=True, slots=True)
class Chart:
    svg: str
    """The chart as an SVG document (for inline HTML)."""
    png: bytes
    """The same chart as PNG (the file the Markdown links to)."""


def chart_available() -> bool:
    try:
        import matplotlib  # noqa: F401, PLC0415 - the optional extra, only when asked for
    except ImportError:
        return False
    return True


def spend_chart(figures: MonthFigures) -> Chart | None:
    """The chart of ``figures``, or None when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: PLC0415 - the optional `report` extra, imported only to draw
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError:
        return None

    eur = figures.eur
    days = list(range(1, len(figures.days) + 1))
    cumulative = [eur(point.cumulative_usd) for point in figures.days]
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "runpod-watchdog", "font.size": 9}):
        figure = Figure(figsize=(8.0, 3.8), dpi=100)
        axes = figure.subplots()
        month_days = round((figures.end - figures.start) / 86_400)
        (line,) = axes.plot(
            days,
            cumulative,
            marker="o",
            markersize=3.5,
            linewidth=2,
            color="#1f6feb",
            label="spent so far (fixed costs from the 1st + RunPod)",
        )
        line.set_gid("cumulative-spend")
        budget = axes.axhline(
            figures.budget_eur, color="#d1242f", linestyle="--", linewidth=1.5, label="monthly budget"
        )
        budget.set_gid("budget-line")
        if not figures.complete and days:
            projection = axes.plot(
                [days[-1], month_days],
                [cumulative[-1], eur(figures.end_of_month_usd)],
                linestyle=":",
                color="#1f6feb",
                linewidth=1.5,
                label="at this month's daily rate",
            )[0]
            projection.set_gid("projection")
        axes.set_xlim(0.5, month_days + 0.5)
        top = max([figures.budget_eur, *cumulative, eur(figures.end_of_month_usd)]) * 1.12
        axes.set_ylim(0, top)
        axes.set_xlabel(f"day of {month_title(figures.start)} (UTC)")
        axes.set_ylabel("euros")
        axes.set_title(f"Spending against the {figures.budget_eur:.2f} € budget")
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", frameon=False)
        figure.tight_layout()
        svg_buffer = io.StringIO()
        figure.savefig(svg_buffer, format="svg", metadata={"Date": None})
        png_buffer = io.BytesIO()
        figure.savefig(png_buffer, format="png", metadata={"Software": None})
    return Chart(svg=svg_buffer.getvalue(), png=png_buffer.getvalue())
