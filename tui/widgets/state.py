"""The one value every dashboard widget renders, and the few formatters they share.

Widgets never read a clock or a socket: the App builds a :class:`DashboardState` from each reading plus its
injected clock, so the same state always draws the same screen (that is what makes snapshots stable).
Times are shown in UTC, like the daemon's ledger and logs, so a sysadmin can match them line for line.

Money is shown in euros wherever a person reads it (the budget is in euros): the status carries some
figures in USD (cost per 1,000 requests, the targets, what was saved) and its ``budget.usd_per_eur``; they
are converted here, once, and always written ``12.34 €``.

Nothing is cut or wrapped in the middle of a value: :func:`flow` packs whole chunks into lines, and
:class:`Prose` wraps free text only at spaces that do not sit inside a value (``16.20 €``, ``81 %``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions
from rich.measure import Measurement
from rich.text import Text
from textual.widget import Widget

from tui.source import LedgerView
from watchdog.clock import month_start
from watchdog.status import DaemonStatus, EndpointView, StatusTargets

DAY_S = 86_400.0
MIN_REQUESTS_FOR_COST = 50
"""Below this many requests a cost per 1,000 requests is noise (a handful of requests and one cold start
make it thousands of euros): it is shown as "n/a (12 requests)"."""


@dataclass(frozen=True, slots=True)
class DashboardState:
    """What the dashboard shows: the last status it got, how fresh it is, and the last problem."""

    status: DaemonStatus | None
    live: bool
    """The daemon answered the last read (False: the status came from the ledger, or there is none)."""
    problem: str | None
    now: float
    stale_after_s: float
    ledger: LedgerView | None = None
    """What the ledger adds to the status (the alerts' real delivery state, spend by day); None until the
    first read of it."""

    @property
    def targets(self) -> StatusTargets | None:
        """The daemon's configured targets (None before the first status, or from a very old one)."""
        return self.status.targets if self.status is not None else None

    @property
    def usd_per_eur(self) -> float | None:
        budget = self.status.budget if self.status is not None else None
        return budget.usd_per_eur if budget is not None and budget.usd_per_eur > 0 else None

    @property
    def tick_age_s(self) -> float | None:
        if self.status is None or self.status.last_tick_at is None:
            return None
        return max(0.0, self.now - self.status.last_tick_at)

    @property
    def stale(self) -> bool:
        age = self.tick_age_s
        return not self.live or age is None or age > self.stale_after_s

    def endpoint(self, endpoint_id: str) -> EndpointView | None:
        if self.status is None:
            return None
        return next((e for e in self.status.endpoints if e.id == endpoint_id), None)


# ------------------------------------------------------------------------------------------------------------
# Numbers, money, times
# ------------------------------------------------------------------------------------------------------------


def eur(amount: float) -> str:
    return f"{amount:,.2f} €"


def eur_from_usd(amount_usd: float, usd_per_eur: float | None) -> str:
    """A USD figure of the status, in euros; without a rate (no budget yet) it says it is dollars."""
    if usd_per_eur is None or usd_per_eur <= 0:
        return f"RunPod ${amount_usd:,.2f}"
    return eur(amount_usd / usd_per_eur)


def count(value: int | float) -> str:
    """``1,234,567``."""
    return f"{value:,.0f}"


def plural(value: int, word: str) -> str:
    """``1 request``, ``1,300 requests``."""
    return f"{count(value)} {word}{'' if value == 1 else 's'}"


def utc_clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) + " UTC"


def utc_stamp(ts: float) -> str:
    return time.strftime("%m-%d %H:%M", time.gmtime(ts))


def utc_day(ts: float) -> str:
    """``20 Jun``."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return f"{moment.day} {moment:%b}"


def event_time(ts: float, now: float) -> str:
    """``11:50`` today, ``06-17`` on another day (UTC): five cells, so 80 columns keep room for words."""
    if time.gmtime(ts)[:3] == time.gmtime(now)[:3]:
        return time.strftime("%H:%M", time.gmtime(ts))
    return time.strftime("%m-%d", time.gmtime(ts))


def duration(seconds: float) -> str:
    """Short human durations: ``45 s``, ``10m``, ``12m05s``, ``1h02m``, ``3d04h``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m" if secs == 0 else f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def mode_word(mode: str) -> str:
    return "ENFORCE" if mode == "enforce" else "DRY-RUN"


def percent(ratio: float) -> str:
    return f"{ratio * 100:,.0f} %"


# ------------------------------------------------------------------------------------------------------------
# Figures that must add up
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonthRequests:
    """This month's request count as it can honestly be shown."""

    shown: int
    partial: bool
    """The daemon's month count is lower than its last-24-hours count although the month is older than a
    day: its count restarted (the month count covers only what it saw since ``since``)."""
    since: float | None = None

    def words(self) -> str:
        if not self.partial:
            return count(self.shown)
        since = f" since {utc_day(self.since)}" if self.since is not None else ""
        return f"≥ {count(self.shown)} (month count partial{since})"


def month_requests(endpoint: EndpointView, status: DaemonStatus) -> MonthRequests:
    """Requests this month, never fewer than in the last 24 hours unless the month is younger than a day
    (then the 24 hours legitimately reach into last month)."""
    month, last_24h = endpoint.requests_month, endpoint.requests_24h
    at = status.last_tick_at if status.last_tick_at is not None else status.started_at
    if month >= last_24h or at - month_start(at) < DAY_S:
        return MonthRequests(month, partial=False)
    since = status.started_at if status.started_at > month_start(at) else None
    return MonthRequests(last_24h, partial=True, since=since)


@dataclass(frozen=True, slots=True)
class CostPer1000:
    """The cost per 1,000 requests to show: a figure in euros with its basis, or why there is none."""

    eur: float | None
    basis: str
    """"month", "24 h", or the reason there is no figure ("12 requests")."""
    over: bool = False

    def short(self) -> str:
        return eur(self.eur) if self.eur is not None else "n/a"

    def words(self) -> str:
        if self.eur is None:
            return f"n/a ({self.basis}; needs {MIN_REQUESTS_FOR_COST})"
        return f"{eur(self.eur)} ({self.basis})"


def cost_per_1000(endpoint: EndpointView, status: DaemonStatus) -> CostPer1000:
    """The month's figure when the month count is complete and large enough, else the last 24 hours', else
    none: a cost per 1,000 from a handful of requests is meaningless."""
    rate = status.budget.usd_per_eur if status.budget is not None else None
    if rate is None or rate <= 0:
        rate = 1.0
    limit_usd = status.targets.cost_per_1000_usd if status.targets is not None else None
    requests = month_requests(endpoint, status)
    candidates = []
    if not requests.partial:
        candidates.append((endpoint.cost_per_1000_month_usd, endpoint.requests_month, "month"))
    candidates.append((endpoint.cost_per_1000_24h_usd, endpoint.requests_24h, "24 h"))
    for usd, requests_seen, basis in candidates:
        if usd is not None and requests_seen >= MIN_REQUESTS_FOR_COST:
            over = limit_usd is not None and usd > limit_usd
            return CostPer1000(usd / rate, basis, over)
    return CostPer1000(None, plural(max(endpoint.requests_month, endpoint.requests_24h), "request"))


PLAUSIBLE_FREE_SHARE = 0.6
"""The team offers about 30 % of requests free to learners; a measured share above this means the logs'
tier field counts something else (a keep-warm bot's free-tier pings), so no euro figure is derived from it."""


def free_share_words(budget_free_share: float, measured: bool, free_eur: float) -> tuple[str, bool]:
    """(words, plausible) for the part of spend that served free requests, with its basis."""
    basis = "measured in the logs" if measured else "configured share"
    if measured and budget_free_share > PLAUSIBLE_FREE_SHARE:
        return (
            f"free share n/a: logs say {percent(budget_free_share)} free, implausible (bot traffic?)",
            False,
        )
    return f"free {eur(free_eur)} ({percent(budget_free_share)} of requests, {basis})", True


# ------------------------------------------------------------------------------------------------------------
# Text that never breaks inside a value
# ------------------------------------------------------------------------------------------------------------

_GLUED_SPACE = re.compile(r"(?<=\d) (?=[€%]|s\b|h\b|min\b|req)|(?<=[▲✗✖●◐≥~]) ")
"""Spaces that belong to a value (``16.20 €``, ``81 %``, ``45 s``, ``▲ HUNG``) and never end a line."""
_WORD = re.compile(r"\s*\S+\s*")


def _break_offsets(plain: str, width: int) -> list[int]:
    glued = _GLUED_SPACE.sub("_", plain)
    offsets: list[int] = []
    used = 0
    for match in _WORD.finditer(glued):
        word = match.group(0)
        if used and used + cell_len(word.rstrip()) > width:
            offsets.append(match.start())
            used = 0
        used += cell_len(word)
    return offsets


def wrap(text: Text, width: int) -> list[Text]:
    """``text`` in lines of at most ``width`` cells, broken only at spaces outside values."""
    lines: list[Text] = []
    for line in text.split("\n", allow_blank=True):
        for part in line.divide(_break_offsets(line.plain, max(1, width))):
            part.rstrip()
            lines.append(part)
    return lines


def join_lines(lines: Iterable[Text]) -> Text:
    joined = Text("\n").join(lines)
    joined.no_wrap = True
    joined.overflow = "ellipsis"
    return joined


class Prose:
    """A Rich renderable: free text wrapped to the width it is given, never inside a value."""

    def __init__(self, text: Text) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        yield join_lines(wrap(self.text, options.max_width))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        glued = _GLUED_SPACE.sub("_", self.text.plain)
        words = [cell_len(word) for word in glued.split()] or [0]
        longest_line = max((cell_len(line) for line in self.text.plain.split("\n")), default=0)
        return Measurement(min(max(words), options.max_width), min(longest_line, options.max_width))


def flow(chunks: Sequence[Text | str], width: int, separator: str = " · ") -> Text:
    """Whole chunks packed into lines of ``width`` cells: a chunk goes to the next line rather than being
    broken (one longer than a line is cut with an ellipsis, never wrapped)."""
    lines: list[Text] = [Text()]
    for chunk in chunks:
        piece = Text(chunk) if isinstance(chunk, str) else chunk
        if not piece.plain:
            continue
        line = lines[-1]
        if line.plain and line.cell_len + cell_len(separator) + piece.cell_len > width:
            line = Text()
            lines.append(line)
        elif line.plain:
            line.append(separator)
        line.append_text(piece)
    return join_lines(lines)


# ------------------------------------------------------------------------------------------------------------
# Redrawing without a new layout
# ------------------------------------------------------------------------------------------------------------


def line_count(text: Text | None) -> int:
    """The lines a text that never wraps (``join_lines``, ``flow``) takes; 0 for no text drawn yet."""
    return 0 if text is None else text.plain.count("\n") + 1


def prose_lines(text: Text | None, widget: Widget) -> int:
    """The lines :class:`Prose` ``text`` takes in ``widget`` at its width now; 0 for no text drawn yet, or
    before the widget is laid out."""
    width = widget.content_size.width
    return len(wrap(text, width)) if text is not None and width else 0


def needs_layout(widget: Widget, lines_before: int, lines_after: int) -> bool:
    """Whether redrawing a widget whose height is its number of lines needs a new layout of the screen.

    A layout arranges every widget again, so a redraw asks for one only when the widget's height changes
    while it is on screen: a widget that is not (on a tab not open) gets its height when it is shown, which
    lays the screen out anyway."""
    return lines_before != lines_after and widget.size.width > 0


def displayed(widget: Widget) -> bool:
    """Whether the widget and every widget around it are displayed: not on a tab that is not open, not
    hidden by the screen's rules (the month's panel beside the budget on a narrow screen).

    Repainting a widget that is not displayed costs about as much as a layout: Textual then rebuilds its
    map of every widget, arranging the whole screen, the next time it looks one up. So the widgets that
    change at every tick on a tab (the traffic rows, the month's chart and words) keep their figures while
    hidden and repaint when they are shown (their ``on_show``)."""
    return all(node.display for node in widget.ancestors_with_self)
