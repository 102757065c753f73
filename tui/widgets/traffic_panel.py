"""Requests + pings per minute over the last hour, one sparkline per endpoint.

A keep-alive pinger hammering an endpoint is how GPU time leaks without anyone asking for work; the
sparkline shows the shape at a glance and the words beside it say what the daemon's traffic watch found
(▲ SUSPICIOUS: …), so a flagged endpoint stands out without relying on colour.

Rows are rebuilt only when the set of endpoints changes; otherwise each part of a row is updated only when
its own figures changed (a tick moves the sparkline once a minute, not every refresh), and only while the
tab is open: a closed tab's rows catch up when it is shown.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import var
from textual.widgets import Label, Sparkline, Static

from tui.widgets.state import DashboardState, Prose, count, displayed, needs_layout, plural, prose_lines
from watchdog.status import EndpointView


def rate_summary(endpoint: EndpointView) -> Text:
    rates = endpoint.rate_per_min
    now = rates[-1] if rates else 0
    text = Text(f"{count(now):>5}/min", no_wrap=True)
    if endpoint.suspicious:
        text.append(" ▲ SUSPICIOUS", style="bold red")
    else:
        text.append(" normal", style="green")
    return text


def findings(endpoint: EndpointView) -> Text:
    rates = endpoint.rate_per_min
    peak = max(rates) if rates else 0
    text = Text(
        f"peak {count(peak)}/min · last hour: {plural(endpoint.requests_1h, 'request')},"
        f" {plural(endpoint.pings_1h, 'ping')}",
        style="bright_black",
    )
    if endpoint.suspicious:
        text.append(" · " + "; ".join(endpoint.suspicious), style="bold red")
    return text


def same_endpoints(shown: tuple[EndpointView, ...], endpoints: tuple[EndpointView, ...]) -> bool:
    """The same endpoints in the same order (their rows can be updated in place)."""
    return [endpoint.id for endpoint in shown] == [endpoint.id for endpoint in endpoints]


class TrafficRow(Vertical):
    """Name, sparkline and verdict on one line; the hour's counts and any findings under it."""

    def __init__(self, endpoint: EndpointView) -> None:
        super().__init__(id=f"traffic-{endpoint.id}", classes="traffic-row")
        self.endpoint = endpoint

    def compose(self) -> ComposeResult:
        with Horizontal(classes="traffic-line"):
            yield Label(self.endpoint.name, classes="traffic-name")
            yield Sparkline(list(self.endpoint.rate_per_min) or [0], classes="traffic-spark")
            yield Static(rate_summary(self.endpoint), classes="traffic-figures")
        yield Static(Prose(findings(self.endpoint)), classes="traffic-findings")

    def show(self, endpoint: EndpointView) -> None:
        previous, self.endpoint = self.endpoint, endpoint
        if endpoint == previous:
            return
        self.set_class(bool(endpoint.suspicious), "-suspicious")
        if endpoint.name != previous.name:
            self.query_one(".traffic-name", Label).update(endpoint.name)
        if endpoint.rate_per_min != previous.rate_per_min:
            self.query_one(Sparkline).data = list(endpoint.rate_per_min) or [0]
        summary = rate_summary(endpoint)
        if summary != rate_summary(previous):
            self.query_one(".traffic-figures", Static).update(summary, layout=False)
        found, found_before = findings(endpoint), findings(previous)
        if found != found_before:
            # The hour's counts move at every tick, the line's height seldom: the screen is laid out again
            # only when it changes.
            line = self.query_one(".traffic-findings", Static)
            layout = needs_layout(line, prose_lines(found_before, line), prose_lines(found, line))
            line.update(Prose(found), layout=layout)

    def on_mount(self) -> None:
        self.set_class(bool(self.endpoint.suspicious), "-suspicious")


class TrafficPanel(VerticalScroll):
    """One TrafficRow per endpoint."""

    state: var[DashboardState | None] = var(None)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drawn: tuple[EndpointView, ...] | None = None

    async def watch_state(self, state: DashboardState | None) -> None:
        endpoints = state.status.endpoints if state and state.status else ()
        if endpoints == self._drawn:
            return
        if self._drawn and same_endpoints(self._drawn, endpoints) and not displayed(self):
            return  # new figures while the tab is not open: on_show brings the rows up to date
        self._drawn = endpoints
        rows = list(self.query(TrafficRow))
        if rows and same_endpoints(tuple(row.endpoint for row in rows), endpoints):
            for row, endpoint in zip(rows, endpoints, strict=True):
                row.show(endpoint)
            return
        await self.remove_children()
        if endpoints:
            await self.mount_all(TrafficRow(endpoint) for endpoint in endpoints)
        else:
            await self.mount(Static("No endpoints seen yet.", classes="empty"))

    async def on_show(self) -> None:
        await self.watch_state(self.state)
