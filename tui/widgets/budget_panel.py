"""Where the 20 EUR stand: spent so far against the budget, and whether the month will fit.

The bar runs to 125 % so an overrun is visible instead of clipped; its marks are the daemon's configured
alert thresholds (``budget.alert_thresholds``). The verdict is a word (OK, WARN, OVER) next to the colour,
and the forecast says in words whether it overruns.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.widgets.state import DashboardState, eur, percent
from watchdog.status import BudgetView

COMPACT_WIDTH = 70
"""From this content width on (80 columns and more), the figures fit in two lines instead of four."""
BAR_SCALE = 1.25
"""The bar's right edge, as a share of the budget."""


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


class BudgetPanel(Widget):
    """Month-to-date spend vs budget, its parts, the forecast, and what is still allowed per day."""

    BORDER_TITLE = "Budget"
    state: reactive[DashboardState | None] = reactive(None, layout=True)

    def render(self) -> Text:
        budget = self.state.status.budget if self.state and self.state.status else None
        if budget is None:
            return Text("No budget figures yet (the daemon has not completed a tick).", style="italic")
        compact = self.size.width >= COMPACT_WIDTH
        word, word_style = verdict(budget)
        # The share behind the free-requests figure, and whether the logs measured it or config assumed it.
        basis = "logs" if budget.free_share_measured else "cfg"
        free = f"free {eur(budget.free_share_eur)} ({percent(budget.free_share)} {basis})"
        text = Text()
        text.append(f"{budget.month}: ")
        text.append(eur(budget.spent_eur), style="bold")
        text.append(f" of {eur(budget.monthly_eur)} ({percent(budget.used_ratio)})  ")
        text.append(f" {word} ", style=word_style)
        if compact:
            text.append(f"  {free}")
        bar, labels = budget_bar(budget.used_ratio, self.size.width - 2, budget.thresholds)
        text.append("\n")
        text.append_text(bar)
        text.append("\n")
        text.append_text(labels)
        parts = f"fixed {eur(budget.fixed_eur)} + variable {eur(budget.variable_eur)}"
        variable = f"estimate {eur(budget.estimate_eur)}, billed {eur(budget.billed_eur)}"
        if compact:
            text.append(f"\n{parts} ({variable})")
        else:
            text.append(f"\n{parts} · {free}\n{variable}")
        overruns = budget.forecast_overrun or budget.forecast_eur > budget.monthly_eur
        text.append(f"\nforecast {eur(budget.forecast_eur)} ")
        if overruns:
            text.append(" ▲ OVERRUNS ", style="bold white on red")
        else:
            text.append(" fits ", style="bold black on green")
        allowed = f"{budget.days_left:.1f} days left · {eur(budget.eur_per_day_allowed)}/day allowed"
        text.append(f" · {allowed}" if compact else f"\n{allowed}")
        return text
