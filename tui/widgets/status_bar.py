"""The first line a sysadmin reads: is the daemon up, how old is what I see, can it see RunPod, which mode.

Every state is a word (UP, DOWN, STALE, BLIND, ENFORCE, DRY-RUN) as well as a colour, so it reads the same
on a monochrome SSH session and to colour-blind eyes.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.widgets.state import DashboardState, duration, mode_word, utc_clock


class StatusBar(Widget):
    """Daemon up/down, freshness, blindness, mode, pending alerts; a second line for the last problem."""

    state: reactive[DashboardState | None] = reactive(None, layout=True)

    def render(self) -> Text:
        state = self.state
        if state is None:
            return Text("… connecting to the daemon")
        status = state.status
        line = Text()
        since = (
            f" since {utc_clock(status.last_tick_at)}" if status and status.last_tick_at is not None else ""
        )
        if state.live and not state.stale:
            line.append(" ● DAEMON UP ", style="bold black on green")
        elif state.live:
            line.append(f" ◐ DAEMON UP · STALE{since} ", style="bold black on yellow")
        elif status is not None:
            line.append(f" ✖ DAEMON DOWN · stale{since} ", style="bold white on red")
        else:
            line.append(" ✖ DAEMON DOWN · no data ", style="bold white on red")
        if status is not None:
            age = state.tick_age_s
            if age is not None:
                line.append(f" tick {duration(age)} ago")
                if not status.last_tick_ok:
                    line.append(" (FAILED)", style="bold red")
            else:
                line.append(" no tick yet")
            if status.blind:
                line.append(" · ")
                line.append(
                    f" BLIND: {status.blind_reason or 'no data from RunPod'} ", style="bold white on red"
                )
            else:
                line.append(" · sees RunPod", style="green")
            line.append(" · mode ")
            line.append(
                mode_word(status.mode), style="bold green" if status.mode == "enforce" else "bold yellow"
            )
            if status.alerts_pending:
                line.append(f" · ▲ {status.alerts_pending} alert(s) pending", style="bold yellow")
        if state.problem:
            line.append("\n")
            line.append(f"⚠ {state.problem}", style="bold red")
        return line
