"""The first line a sysadmin reads: is the daemon up, how old is what I see, can it see RunPod, which mode.

Every state is a word (UP, DOWN, STALE, BLIND, ENFORCE, DRY-RUN) as well as a colour, so it reads the same
on a monochrome SSH session and to colour-blind eyes. "sees RunPod" is said only when it is known now: a
live daemon with a fresh tick that was not blind. With the daemon down or its tick stale, nobody knows.

The bar is the one widget that changes every second (the age of the last tick); it redraws only when its
text changes, and asks for a new layout only when its number of lines changes.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import var
from textual.widgets import Static

from tui.widgets.state import DashboardState, duration, flow, mode_word, utc_clock


def status_chunks(state: DashboardState) -> list[Text]:
    """The bar's first line, as chunks that are never split."""
    status = state.status
    chunks: list[Text] = []
    since = f" since {utc_clock(status.last_tick_at)}" if status and status.last_tick_at is not None else ""
    if state.live and not state.stale:
        chunks.append(Text("● DAEMON UP", style="bold black on green"))
    elif state.live:
        chunks.append(Text(f" ◐ DAEMON UP · STALE{since} ", style="bold black on yellow"))
    elif status is not None:
        chunks.append(Text(f" ✖ DAEMON DOWN · stale{since} ", style="bold white on red"))
    else:
        chunks.append(Text(" ✖ DAEMON DOWN · no data ", style="bold white on red"))
    if status is None:
        return chunks
    age = state.tick_age_s
    if age is None:
        chunks.append(Text("no tick yet"))
    else:
        tick = Text(f"tick {duration(age)} ago")
        if not status.last_tick_ok:
            tick.append(" (FAILED)", style="bold red")
        chunks.append(tick)
    if status.blind:
        last_ok = f" (last full read {utc_clock(status.last_ok_at)})" if status.last_ok_at else ""
        reason = status.blind_reason or "no data from RunPod"
        chunks.append(Text(f" BLIND: {reason}{last_ok} ", style="bold white on red"))
    elif not state.live:
        chunks.append(Text("RunPod: unknown (daemon down)", style="bold"))
    elif state.stale:
        chunks.append(Text("RunPod: unknown (no fresh tick)", style="bold yellow"))
    else:
        chunks.append(Text("sees RunPod", style="green"))
    chunks.append(
        Text(mode_word(status.mode), style="bold green" if status.mode == "enforce" else "bold yellow")
    )
    unacknowledged = _unacknowledged(state)
    alerts = []
    if status.alerts_pending:
        alerts.append(f"{status.alerts_pending} unsent")
    if unacknowledged:
        alerts.append(f"{unacknowledged} unacked (a)")
    if alerts:
        chunks.append(Text("▲ alerts: " + ", ".join(alerts), style="bold yellow"))
    if status.ledger_problem:
        chunks.append(Text(f"▲ ledger: {status.ledger_problem}", style="bold red"))
    return chunks


def _unacknowledged(state: DashboardState) -> int:
    if state.ledger is None:
        return 0
    return sum(1 for alert in state.ledger.alerts if alert.acknowledged_at is None)


def status_text(state: DashboardState | None, width: int) -> Text:
    if state is None:
        return Text("… connecting to the daemon")
    text = flow(status_chunks(state), width, separator=" · ")
    if state.problem:
        text.append("\n")
        text.append(f"⚠ {state.problem}", style="bold red")
    return text


class StatusBar(Static):
    """Daemon up/down, freshness, blindness, mode, alerts; a last line for the last problem."""

    state: var[DashboardState | None] = var(None)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("… connecting to the daemon", id=id)
        self._drawn: Text | None = None

    def watch_state(self, state: DashboardState | None) -> None:
        self.show(state)

    def on_resize(self) -> None:
        self._drawn = None
        self.show(self.state)

    def show(self, state: DashboardState | None) -> None:
        width = self.content_size.width or (self.app.size.width if self.is_attached else 80)
        text = status_text(state, width)
        if self._drawn is not None and text == self._drawn:
            return
        lines_changed = self._drawn is None or text.plain.count("\n") != self._drawn.plain.count("\n")
        self._drawn = text
        self.update(text, layout=lines_changed)

    def render_text(self) -> Text:
        """What the bar shows now (for tests)."""
        return self._drawn if self._drawn is not None else Text("… connecting to the daemon")
