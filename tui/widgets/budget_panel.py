"""Where the 20 EUR stand: spent so far against the budget, and whether the month will fit.

The bar runs to 125 % so an overrun is visible instead of clipped; its marks are the daemon's configured
alert thresholds (``budget.alert_thresholds``). The verdict is a word (OK, WARN, OVER) next to the colour,
and the forecast says in words whether it overruns.

With ``budget.daily_allowance`` on, the pace line also says what today has spent against the day's
allowance (the day's brake pauses the endpoints off the allow-list when it is reached): a bad day shows
before the month does. With it off, nothing is added.

Every figure is a whole chunk: at 80 columns, or with five-digit sums, a figure moves to the next line
rather than being split. The panel redraws only when the budget it shows (or its width) changes, and asks
for a new layout of the screen only when its number of lines changes.
"""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
from textual.reactive import var
from textual.widget import Widget

from tui.widgets.state import (
    DashboardState,
    eur,
    eur_from_usd,
    flow,
    free_share_words,
    join_lines,
    line_count,
    needs_layout,
    percent,
    utc_day,
)
from watchdog.money import brake_fires_at
from watchdog.status import BudgetView, DaemonStatus

BAR_SCALE = 1.25
"""The bar's right edge, as a share of the budget."""
ALLOWANCE_WARN = 0.8
"""Today's spend turns yellow from this share of the day's allowance."""


def _warning_from(thresholds: tuple[float, ...]) -> float:
    """The share of the budget from which the panel warns: the second alert threshold (the first is a
    heads-up), or the only one."""
    below_full = sorted(t for t in thresholds if t < 1.0)
    return below_full[1] if len(below_full) > 1 else (below_full[0] if below_full else 1.0)


def verdict(budget: BudgetView) -> tuple[str, str]:
    """(word, style) for the month so far, against the configured thresholds."""
    if budget.used_ratio >= 1.0:
        return "OVER BUDGET", "bold white on red"
    crossed = [t for t in budget.thresholds if budget.used_ratio >= t]
    if not crossed:
        return "OK", "bold black on green"
    mark = f"▲ {max(crossed) * 100:.0f} %"
    if max(crossed) >= _warning_from(budget.thresholds):
        return f"WARN {mark}", "bold black on yellow"
    return f"OK {mark}", "bold black on green"


def budget_bar(ratio: float, width: int, thresholds: tuple[float, ...]) -> tuple[Text, Text]:
    """The bar and, under it, the threshold labels aligned with their marks."""
    width = max(10, width)
    filled = min(width, round(ratio / BAR_SCALE * width))
    style = "red" if ratio >= 1.0 else "yellow" if ratio >= _warning_from(thresholds) else "green"
    cells = [("█", style) if i < filled else ("░", "bright_black") for i in range(width)]
    labels = [" "] * (width + 6)
    for mark in thresholds:
        position = min(width - 1, round(mark / BAR_SCALE * width))
        cells[position] = ("┃", "bold white")
        label = f"{mark * 100:.0f}%"
        start = max(0, position - len(label) // 2)
        labels[start : start + len(label)] = list(label)
    bar = Text()
    for char, char_style in cells:
        bar.append(char, style=char_style)
    return bar, Text("".join(labels).rstrip(), style="bright_black")


def saved_chunks(status: DaemonStatus) -> list[Text]:
    """What the watchdog's actions saved (enforce) or would have saved (dry-run), in euros."""
    budget = status.budget
    if budget is None or not status.saved_usd or budget.usd_per_eur <= 0:
        return []
    by_mode: dict[str, float] = {}
    for key, usd in status.saved_usd.items():
        mode = key.rsplit("|", 1)[-1]
        by_mode[mode] = by_mode.get(mode, 0.0) + usd / budget.usd_per_eur
    since = f" since {utc_day(status.started_at)}"
    chunks = []
    if by_mode.get("enforce"):
        chunks.append(Text(f"saved ~{eur(by_mode['enforce'])}{since}", style="green"))
    if by_mode.get("dry-run"):
        chunks.append(Text(f"dry-run would have saved ~{eur(by_mode['dry-run'])}", style="yellow"))
    return chunks


def budget_text(status: DaemonStatus, width: int, *, with_saved: bool = True) -> Text:
    budget = status.budget
    assert budget is not None
    word, word_style = verdict(budget)
    free, plausible = free_share_words(budget.free_share, budget.free_share_measured, budget.free_share_eur)
    headline = Text()
    headline.append(f"{budget.month}: ")
    headline.append(eur(budget.spent_eur), style="bold")
    headline.append(f" of {eur(budget.monthly_eur)} ({percent(budget.used_ratio)})")
    lines = [flow([headline, Text(f" {word} ", style=word_style)], width, separator="  ")]
    bar, labels = budget_bar(budget.used_ratio, width, budget.thresholds)
    lines += [bar, labels]
    lines.append(
        flow(
            [
                f"fixed {eur(budget.fixed_eur)} + RunPod {eur(budget.variable_eur)}",
                f"(estimate {eur(budget.estimate_eur)}, billed {eur(budget.billed_eur)})",
            ],
            width,
            separator=" ",
        )
    )
    overruns = budget.forecast_overrun or budget.forecast_eur > budget.monthly_eur
    forecast = Text(f"forecast {eur(budget.forecast_eur)} ")
    if overruns:
        forecast.append(" ▲ OVERRUNS ", style="bold white on red")
    else:
        forecast.append(" fits ", style="bold black on green")
    brake = brake_words(status, short=not with_saved)
    allowance = allowance_words(budget)
    after = [chunk for chunk in (brake, allowance) if chunk is not None]
    if with_saved:  # a wide screen: words, and the brake on its own line
        lines.append(
            flow(
                [
                    forecast,
                    f"{budget.days_left:.1f} days left",
                    f"{eur(budget.eur_per_day_allowed)}/day allowed",
                    *([allowance] if allowance is not None else []),
                ],
                width,
            )
        )
        lines += [brake] if brake is not None else []
    else:  # 80 columns: the panel keeps its six lines (seven on a bad day with the day's allowance on)
        chunks: list[Text | str] = [
            forecast,
            f"{budget.days_left:.1f} d left",
            f"{eur(budget.eur_per_day_allowed)}/day",
        ]
        lines.append(flow([*chunks, *after], width))
    saved = saved_chunks(status) if with_saved else []
    lines.append(
        flow([Text(free, style="" if plausible else "yellow"), *saved, *account_chunks(status)], width)
    )
    return join_lines(lines)


def allowance_words(budget: BudgetView) -> Text | None:
    """Today's variable spend against the day's allowance (``budget.daily_allowance``), marked ``▲ brake``
    once reached (the day's brake pauses the endpoints off the allow-list); None when the allowance is off."""
    allowance = budget.daily_allowance_eur
    if allowance is None:
        return None
    spent = budget.spent_today_eur
    words = Text(f"today {eur(spent)} of {eur(allowance)}")
    if spent >= allowance:
        words.stylize("bold red")
        words.append(" ▲ brake", style="bold red")
    elif spent >= ALLOWANCE_WARN * allowance:
        words.stylize("yellow")
    return words


def brake_words(status: DaemonStatus, *, short: bool = False) -> Text | None:
    """The day the budget brake fires at the forecast's rate (the same date ``plan`` prints), if it does
    this month: the brake pauses every endpoint not on the allow-list."""
    budget, targets = status.budget, status.targets
    if budget is None or targets is None or status.last_tick_at is None:
        return None
    fires = brake_fires_at(
        spent_eur=budget.spent_eur,
        forecast_eur=budget.forecast_eur,
        days_left=budget.days_left,
        monthly_eur=budget.monthly_eur,
        brake_at=targets.brake_at,
        now=status.last_tick_at,
    )
    if fires is None:
        return None
    level = f"{targets.brake_at * 100:.0f} %"
    if fires <= status.last_tick_at:
        words = (
            "brake reached" if short else f"brake at {level} reached: endpoints off the allow-list are paused"
        )
        return Text(words, style="bold red")
    words = f"brake ~{utc_day(fires)}" if short else f"brake at {level} fires ~{utc_day(fires)} at this rate"
    return Text(words, style="yellow")


def account_chunks(status: DaemonStatus) -> list[Text]:
    """RunPod's balance and hourly cap, or why the balance is unknown (GraphQL is optional)."""
    chunks: list[Text] = []
    if status.account_problem:
        chunks.append(Text("balance unknown", style="yellow"))
    elif status.balance_usd is not None:
        usd_per_eur = status.budget.usd_per_eur if status.budget is not None else None
        chunks.append(Text(f"RunPod balance {eur_from_usd(status.balance_usd, usd_per_eur)}"))
    if status.spend_rate_cap_usd_per_hr is not None:
        chunks.append(
            Text(
                f"RunPod's cap ${status.spend_rate_cap_usd_per_hr:,.2f}/h at worker start",
                style="bright_black",
            )
        )
    return chunks


class BudgetPanel(Widget):
    """Month-to-date spend vs budget, its parts, the forecast, and what is still allowed per day."""

    BORDER_TITLE = "Budget"
    state: var[DashboardState | None] = var(None)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drawn: tuple[object, ...] | None = None
        self._text: tuple[tuple[int, bool], Text] | None = None
        """The text of the figures drawn, with the width and wideness it was made for."""

    def watch_state(self, state: DashboardState | None) -> None:
        status = state.status if state else None
        key = (
            (status.budget, status.saved_usd, status.started_at, status.balance_usd, status.account_problem)
            if status
            else None
        )
        if key == self._drawn and self._drawn is not None:
            return  # the same figures (a tick that changed nothing here, or a refresh between ticks)
        self._drawn = key
        before = self._text[1] if self._text is not None else None
        self._text = None
        after = self._fitted_text()
        if after == before:
            return
        # The figures move at every tick, the panel's height seldom: the screen is laid out again only then.
        self.refresh(layout=needs_layout(self, line_count(before), line_count(after)))

    def render(self) -> Text:
        return self._fitted_text()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        # The lines at the width being laid out: the panel's own width is still the last layout's here.
        return line_count(self._fitted_text(width)) if width else 0

    def _fitted_text(self, width: int | None = None) -> Text:
        # Narrow screens keep the panel to six lines: what was saved is in the month's tab instead.
        wide = self.is_attached and self.screen.has_class("-wide")
        fit = (max(20, width or self.content_size.width or 58), wide)
        if self._text is None or self._text[0] != fit:
            status = self.state.status if self.state else None
            if status is None or status.budget is None:
                text = Text("No budget figures yet (the daemon has not completed a tick).", style="italic")
            else:
                text = budget_text(status, fit[0], with_saved=fit[1])
            self._text = (fit, text)
        return self._text[1]
