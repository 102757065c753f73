"""Requests + pings per minute over the last hour, one sparkline per endpoint.

A keep-alive pinger hammering an endpoint is how GPU time leaks without anyone asking for work; the
sparkline shows the shape at a glance and the words beside it say what the daemon's traffic watch found
(▲ SUSPICIOUS: …), so a flagged endpoint stands out without relying on colour.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Label, Sparkline, Static

from tui.widgets.state import DashboardState
from watchdog.status import EndpointView


def rate_summary(endpoint: EndpointView) -> Text:
    rates = endpoint.rate_per_min
    now = rates[-1] if rates else 0
    text = Text(f"{now:>3}/min")
    if endpoint.suspicious:
        text.append(" ▲ SUSPICIOUS", style="bold red")
    else:
        text.append(" normal", style="green")
    return text


def findings(endpoint: EndpointView) -> Text:
    rates = endpoint.rate_per_min
    peak = max(rates) if rates else 0
    text = Text(
        f"peak {peak}/min · 1 h: {endpoint.requests_1h} req, {endpoint.pings_1h} pings",
        style="bright_black",
    )
    if endpoint.suspicious:
        text.append(" · " + "; ".join(endpoint.suspicious), style="bold red")
    return text


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
        yield Static(findings(self.endpoint), classes="traffic-findings")

    def show(self, endpoint: EndpointView) -> None:
        self.endpoint = endpoint
        self.set_class(bool(endpoint.suspicious), "-suspicious")
        self.query_one(Sparkline).data = list(endpoint.rate_per_min) or [0]
        self.query_one(".traffic-figures", Static).update(rate_summary(endpoint))
        self.query_one(".traffic-findings", Static).update(findings(endpoint))

    def on_mount(self) -> None:
        self.set_class(bool(self.endpoint.suspicious), "-suspicious")


class TrafficPanel(Vertical):
    """One TrafficRow per endpoint; rows are rebuilt only when the set of endpoints changes."""

    BORDER_TITLE = "Requests + pings per minute, last hour"
    state: reactive[DashboardState | None] = reactive(None)

    async def watch_state(self, state: DashboardState | None) -> None:
        endpoints = state.status.endpoints if state and state.status else ()
        rows = list(self.query(TrafficRow))
        if [row.endpoint.id for row in rows] == [endpoint.id for endpoint in endpoints]:
            for row, endpoint in zip(rows, endpoints, strict=True):
                row.show(endpoint)
            return
        await self.remove_children()
        if endpoints:
            await self.mount_all(TrafficRow(endpoint) for endpoint in endpoints)
        else:
            await self.mount(Static("No endpoints seen yet.", classes="empty"))
