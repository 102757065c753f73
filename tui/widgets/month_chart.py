"""The month as a chart: cumulative spend by day against the budget, where the current rate leads, and the
day the budget brake would fire.

Why a chart: "81 % spent on the 20th" does not say whether the month fits; the line does. The figures come
from the daemon's budget (spent, forecast, days left: the forecast is projected with the budget's current
daily rate) and from the ledger's spend by day (the days before today); today's point is the status's
"spent", so the chart and the budget panel always show the same total. Fixed costs count in full from the
1st, as the daemon counts them.

:func:`month_plan` and :func:`endpoint_plan` are pure (tested without a terminal); :class:`SpendChart`
draws a :class:`ChartPlan` with textual-plotext and repaints only when the picture changes. Under the chart, a
line of words says the same (for monochrome terminals, screen readers and tests).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.text import Text
from textual.geometry import Size
from textual.reactive import var
from textual.widgets import Static
from textual_plotext import PlotextPlot

from tui.source import DaySpend
from tui.widgets.budget_panel import saved_chunks
from tui.widgets.state import (
    DAY_S,
    DashboardState,
    Prose,
    displayed,
    eur,
    join_lines,
    line_count,
    needs_layout,
    prose_lines,
    utc_day,
    wrap,
)
from watchdog.clock import month_start, next_month_start
from watchdog.status import BudgetView, DaemonStatus, EndpointView

COLOURS: dict[str, tuple[int, int, int]] = {
    "spent": (80, 200, 80),
    "rate": (230, 180, 40),
    "budget": (230, 70, 70),
    "brake": (200, 100, 230),
}
"""The chart's colours as RGB, the same in the plot and in its key (plotext's named colours follow the
terminal's palette, the key's Rich styles do not)."""


def _hex(name: str) -> str:
    return "#{:02x}{:02x}{:02x}".format(*COLOURS[name])


@dataclass(frozen=True, slots=True)
class Level:
    value: float
    label: str
    color: str
    """A key of :data:`COLOURS`."""
    dotted: bool = False


@dataclass(frozen=True, slots=True)
class ChartPlan:
    """Everything a chart shows, in days since the month's start (x) and euros (y)."""

    month: str
    """``June 2026``."""
    month_start: float
    days: int
    elapsed: float
    spent: tuple[tuple[float, float], ...]
    """The cumulative spend, oldest first; the last point is now."""
    projection: tuple[tuple[float, float], ...]
    """From now to the month's end at the current daily rate."""
    levels: tuple[Level, ...] = ()
    marker: tuple[float, str] | None = None
    """A day to mark (the brake), with its label."""
    summary: str = ""

    def date(self, x: float) -> str:
        """The calendar day containing ``x``."""
        return utc_day(self.month_start + min(max(0.0, x), self.days - 1e-6) * DAY_S)


def _month_frame(at: float) -> tuple[float, int, str]:
    start = month_start(at)
    days = round((next_month_start(at) - start) / DAY_S)
    return start, days, datetime.fromtimestamp(start, tz=UTC).strftime("%B %Y")


def _cumulative(
    daily_usd: dict[int, float], usd_per_eur: float, start_eur: float, elapsed: float, now_eur: float
) -> tuple[tuple[float, float], ...]:
    """(x, €) at the start of the month, at the end of each finished day, and now (the authoritative
    total: the ledger's days are capped to it, so the line never runs above the figure shown)."""
    points = [(0.0, min(start_eur, now_eur))]
    total = start_eur
    for day in range(math.floor(elapsed)):
        total += daily_usd.get(day, 0.0) / usd_per_eur
        points.append((float(day + 1), min(total, now_eur)))
    if elapsed > points[-1][0]:
        points.append((elapsed, now_eur))
    else:
        points[-1] = (points[-1][0], now_eur)
    return tuple(points)


def _crossing(level: float, spent: tuple[tuple[float, float], ...], rate: float, days: int) -> float | None:
    """Where the line reaches ``level``: already (interpolated on the past), or ahead at ``rate``."""
    for (x0, y0), (x1, y1) in itertools.pairwise(spent):
        if y0 < level <= y1:
            return x0 + (x1 - x0) * (level - y0) / (y1 - y0)
    if spent and spent[0][1] >= level:
        return 0.0
    x_now, y_now = spent[-1]
    if rate <= 0:
        return None
    x = x_now + (level - y_now) / rate
    return x if x <= days else None


def _by_day(spend: Iterable[DaySpend], start: float, endpoint_id: str | None = None) -> dict[int, float]:
    daily: dict[int, float] = {}
    for row in spend:
        if endpoint_id is not None and row.endpoint_id != endpoint_id:
            continue
        index = int((row.day - start) // DAY_S)
        daily[index] = daily.get(index, 0.0) + row.usd
    return daily


def month_plan(
    budget: BudgetView, brake_at: float | None, spend: Iterable[DaySpend] | None, at: float
) -> ChartPlan:
    """The account's month: cumulative spend (fixed costs from the 1st), the forecast at the budget's
    current daily rate, the budget and the brake level, and the day the brake would fire."""
    start, days, label = _month_frame(at)
    elapsed = min(float(days), max(0.0, days - budget.days_left))
    rate = (budget.forecast_eur - budget.spent_eur) / budget.days_left if budget.days_left > 0 else 0.0
    daily = _by_day(spend, start) if spend is not None else {}
    spent = (
        _cumulative(daily, budget.usd_per_eur, budget.fixed_eur, elapsed, budget.spent_eur)
        if spend is not None
        else ((0.0, min(budget.fixed_eur, budget.spent_eur)), (elapsed, budget.spent_eur))
    )
    projection = ((elapsed, budget.spent_eur), (float(days), budget.forecast_eur))
    levels = [Level(budget.monthly_eur, f"budget {eur(budget.monthly_eur)}", "budget")]
    marker = None
    words = [
        f"{eur(budget.spent_eur)} spent by {utc_day(at)};"
        f" at {eur(max(0.0, rate))}/day the month ends at {eur(budget.forecast_eur)}"
        + (" (over budget)." if budget.forecast_eur > budget.monthly_eur else " (fits).")
    ]
    plan = ChartPlan(label, start, days, elapsed, spent, projection)
    if brake_at is not None:
        brake = brake_at * budget.monthly_eur
        # The brake's level is 1 € under the budget's: at a chart's height the two would share a row, so
        # the brake is the day it fires (a bar where the line crosses it), named in the key.
        fires = _crossing(brake, spent, rate, days)
        if fires is None:
            words.append(f"The brake ({brake_at * 100:.0f} % = {eur(brake)}) would not fire this month.")
        elif fires <= elapsed:
            marker = (fires, f"brake {eur(brake)} reached {plan.date(fires)}")
            words.append(f"The brake level ({eur(brake)}) was reached on {plan.date(fires)}.")
        else:
            marker = (fires, f"brake {eur(brake)} ~{plan.date(fires)}")
            words.append(
                f"At this rate the brake ({brake_at * 100:.0f} % = {eur(brake)}) fires on"
                f" ~{plan.date(fires)}: every endpoint outside the allow-list is paused."
            )
    if spend is None:
        words.append("(Spend by day unavailable: the line joins the 1st to today.)")
    return ChartPlan(
        label, start, days, elapsed, spent, projection, tuple(levels), marker, summary=" ".join(words)
    )


def endpoint_plan(
    endpoint: EndpointView, budget: BudgetView | None, spend: Iterable[DaySpend] | None, at: float
) -> ChartPlan:
    """One endpoint's month: its cumulative spend and where its month-to-date daily average leads."""
    start, days, label = _month_frame(at)
    days_left = budget.days_left if budget is not None else (start + days * DAY_S - at) / DAY_S
    elapsed = min(float(days), max(0.0, days - days_left))
    rate_usd = budget.usd_per_eur if budget is not None and budget.usd_per_eur > 0 else 1.0
    now_eur = endpoint.spend_month_eur
    spent = (
        _cumulative(_by_day(spend, start, endpoint.id), rate_usd, 0.0, elapsed, now_eur)
        if spend is not None
        else ((0.0, 0.0), (elapsed, now_eur))
    )
    per_day = now_eur / elapsed if elapsed > 0 else 0.0
    month_end = now_eur + per_day * (days - elapsed)
    words = (
        f"{endpoint.name}: {eur(now_eur)} this month by {utc_day(at)}; at its average of"
        f" {eur(per_day)}/day it reaches {eur(month_end)} by the month's end"
    )
    if budget is not None and budget.monthly_eur > 0:
        words += f" ({month_end / budget.monthly_eur * 100:.0f} % of the {eur(budget.monthly_eur)} budget)."
    return ChartPlan(
        label,
        start,
        days,
        elapsed,
        spent,
        ((elapsed, now_eur), (float(days), month_end)),
        summary=words,
    )


def plan_words(plan: ChartPlan | None, width: int, extra: Text | None = None) -> Text:
    if plan is None:
        return Text("No budget figures yet (the daemon has not completed a tick).", style="italic")
    text = Text(plan.summary)
    if extra is not None and extra.plain:
        text.append("\n")
        text.append_text(extra)
    return join_lines(wrap(text, max(20, width)))


class SpendChart(PlotextPlot):
    """A :class:`ChartPlan`, drawn; repainted only when the picture changes.

    Between two ticks the spend moves by cents, which a chart of a few dozen cells seldom shows (none of 30
    successive ticks of the fleet-10 simulation changed it): a new plan is plotted at once when the chart is
    on screen, and the chart is repainted only if the picture differs (building it costs about 2 ms, a
    repaint more). A chart not displayed (on a tab not open) plots nothing until it is shown."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.plan: ChartPlan | None = None
        self._plotted = False
        """Whether ``plt`` holds :attr:`plan`."""
        self._picture: tuple[tuple[int, int, str], Text] | None = None
        """The last picture built, with the size and theme it was built for."""
        self._repaint_on_show = False

    def draw(self, plan: ChartPlan | None) -> None:
        if plan == self.plan:
            return
        self.plan = plan
        self._plotted = False
        if not displayed(self):
            self._repaint_on_show = True
            return
        shown = self._picture
        if shown is None or not self.size.area:
            self.refresh()
            return
        if self.picture() != shown[1]:
            self.refresh()

    def on_show(self) -> None:
        if self._repaint_on_show:  # a new plan came while it was hidden: what it drew before may be kept
            self._repaint_on_show = False
            self.refresh()

    def render(self) -> Text:
        return self.picture()

    def picture(self) -> Text:
        """The plan as plotext draws it at the chart's size (built again only when the plan, the size or
        the theme changed)."""
        fit = (self.size.width, self.size.height, self.app.theme)
        if self._plotted and self._picture is not None and self._picture[0] == fit:
            return self._picture[1]
        if not self._plotted:
            self._plot_plan(self.plan)
            self._plotted = True
        picture = super().render()
        assert isinstance(picture, Text)
        self._picture = (fit, picture)
        return picture

    def _plot_plan(self, plan: ChartPlan | None) -> None:
        plt = self.plt
        plt.clear_figure()
        if plan is None:
            plt.title("No figures yet")
            return
        # Lines are told apart by their glyph as well as their colour (see MonthKey): the spend and where
        # it leads in braille, the budget as a rule, the brake's day as a bar.
        for level in plan.levels:
            value = [level.value, level.value]
            marker = "•" if level.dotted else "─"
            plt.plot([0.0, float(plan.days)], value, marker=marker, color=COLOURS[level.color])
        if plan.marker is not None:
            plt.vline(plan.marker[0], COLOURS["brake"])
        xs, ys = zip(*plan.spent, strict=True)
        plt.plot(list(xs), list(ys), marker="braille", color=COLOURS["spent"])
        px, py = zip(*plan.projection, strict=True)
        plt.plot(list(px), list(py), marker="braille", color=COLOURS["rate"])
        top = max([y for _, y in plan.spent + plan.projection] + [level.value for level in plan.levels])
        ticks = [0.0, 9.0, 19.0, plan.days - 1.0]
        plt.xticks(ticks, [str(int(tick) + 1) for tick in ticks])
        plt.xlim(0, plan.days)
        plt.ylim(0, top * 1.1 if top > 0 else 1.0)


class MonthChart(SpendChart):
    """The account's month, following the dashboard's state."""

    state: var[DashboardState | None] = var(None)

    def watch_state(self, state: DashboardState | None) -> None:
        self.draw(plan_of(state))


def plan_of(state: DashboardState | None) -> ChartPlan | None:
    status = state.status if state else None
    if state is None or status is None or status.budget is None:
        return None
    ledger = state.ledger
    spend = ledger.spend_by_day if ledger is not None and ledger.problem is None else None
    at = status.last_tick_at if status.last_tick_at is not None else state.now
    brake_at = status.targets.brake_at if status.targets is not None else None
    return month_plan(status.budget, brake_at, spend, at)


class MonthWords(Static):
    """The month's chart in words: spent, where the current rate leads, when the brake would fire."""

    state: var[DashboardState | None] = var(None)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.plan: ChartPlan | None = None
        self.saved: Text | None = None
        self._text: tuple[int, Text] | None = None
        """The words drawn, with the width they were wrapped to."""
        self._repaint_on_show = False

    def watch_state(self, state: DashboardState | None) -> None:
        plan = plan_of(state)
        saved = saved_words(state.status if state else None)
        if plan is not None and (plan, saved) == (self.plan, self.saved):
            return
        self.plan, self.saved = plan, saved
        before = self._text[1] if self._text is not None else None
        self._text = None
        if not displayed(self):
            self._repaint_on_show = True
            return
        after = self._fitted_text()
        if after != before:
            self.refresh(layout=needs_layout(self, line_count(before), line_count(after)))

    def on_show(self) -> None:
        if self._repaint_on_show:  # new words came while it was hidden: what it drew before may be kept
            self._repaint_on_show = False
            self.refresh(layout=True)

    def render(self) -> Text:
        return self._fitted_text()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        # The lines at the width being laid out: the widget's own width is still the last layout's here.
        return line_count(self._fitted_text(width)) if width else 0

    def _fitted_text(self, width: int | None = None) -> Text:
        width = width or self.content_size.width or 60
        if self._text is None or self._text[0] != width:
            self._text = (width, plan_words(self.plan, width, self.saved))
        return self._text[1]


def saved_words(status: DaemonStatus | None) -> Text | None:
    """What the watchdog's actions saved, as the budget panel says it on wide screens."""
    chunks = saved_chunks(status) if status is not None else []
    return Text(" · ").join(chunks) if chunks else None


def plan_key(plan: ChartPlan | None) -> Text:
    """The chart's legend, one line of words: which glyph is which line."""
    if plan is None:
        return Text("")
    text = Text()
    text.append("⣀ spent", style=_hex("spent"))
    text.append(" → ", style="bright_black")
    text.append("⠤ at this rate", style=_hex("rate"))
    for level in plan.levels:
        text.append("  ")
        text.append(f"{'•' if level.dotted else '─'} {level.label}", style=_hex(level.color))
    if plan.marker is not None:
        text.append("  ")
        text.append(f"│ {plan.marker[1]}", style=_hex("brake"))
    text.append(f"  · days of {plan.month}, UTC", style="bright_black")
    return text


class MonthKey(Static):
    """The month chart's legend, in words under it (plotext's own legend would cover the lines)."""

    state: var[DashboardState | None] = var(None)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.plan: ChartPlan | None = None
        self._key: Text | None = None

    def watch_state(self, state: DashboardState | None) -> None:
        plan = plan_of(state)
        if plan is not None and plan == self.plan:
            return
        self.plan = plan
        key = plan_key(plan)  # the spend moves at every tick, the key's words seldom
        if key == self._key:
            return
        before = prose_lines(self._key, self)
        self._key = key
        self.update(Prose(key), layout=needs_layout(self, before, prose_lines(key, self)))
