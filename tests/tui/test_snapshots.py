"""Snapshots of the dashboard at the two sizes it promises (80x24 usable, 120x40 comfortable).

The status, the clock and the terminal size are fixed, so an SVG changes only when what a sysadmin would
see changes. Regenerate deliberately with ``pytest tests/tui --snapshot-update`` and review the diff.

The states: the main story (a hung job, alerts in every delivery state), a healthy day, the daemon down,
the watchdog blind, a 60-character name with five-digit sums, the alerts' four states, the month's chart,
the traffic tab, an endpoint's detail (with its own month chart), its what-if (``w``) and the pause
dialog.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from dashboard_fixtures import (
    DAY,
    FIXED_NOW,
    blind_status,
    dashboard_app,
    dashboard_source,
    dashboard_status,
    healthy_status,
    long_spend,
    long_status,
)
from textual.pilot import Pilot

from tui.source import KnownAlert, StaticSource

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def pressing(*keys: str) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def alert_states_source() -> StaticSource:
    """Only alerts, one in each state the ledger knows, with short texts so 80x24 shows all four."""
    alerts = (
        KnownAlert(
            "budget:2026-06:0.8", ":rotating_light: Budget 80 % reached", "pending", FIXED_NOW - 600, 16.2
        ),
        KnownAlert(
            "flood:hermes",
            ":warning: Ping flood on hermes-llm",
            "sent",
            FIXED_NOW - 1500,
            None,
            "traffic",
            sent_at=FIXED_NOW - 1495,
            attempts=1,
        ),
        KnownAlert(
            "cost:hermes",
            ":money_with_wings: Cost per 1,000 over $3.00",
            "failed",
            FIXED_NOW - 7200,
            6.66,
            "cost",
            attempts=3,
            last_error="Slack answered 503",
        ),
        KnownAlert(
            "budget:2026-06:0.5",
            ":warning: Budget 50 % reached",
            "sent",
            FIXED_NOW - 3 * DAY,
            10.02,
            "budget",
            sent_at=FIXED_NOW - 3 * DAY + 5,
            acknowledged_at=FIXED_NOW - 2 * DAY,
            attempts=1,
        ),
    )
    return dashboard_source(dataclasses.replace(dashboard_status(), events=()), alerts=alerts)


@SIZES
def test_dashboard(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(dashboard_app(), terminal_size=size, run_before=settle)


@SIZES
def test_healthy(snap_compare: Any, size: tuple[int, int]) -> None:
    source = dashboard_source(healthy_status(), alerts=())
    assert snap_compare(dashboard_app(source=source), terminal_size=size, run_before=settle)


@SIZES
def test_daemon_down(snap_compare: Any, size: tuple[int, int]) -> None:
    source = dashboard_source(
        live=False, problem="the daemon is not running (no control socket at /run/w.sock)"
    )
    assert snap_compare(dashboard_app(source=source), terminal_size=size, run_before=settle)


@SIZES
def test_blind(snap_compare: Any, size: tuple[int, int]) -> None:
    source = dashboard_source(blind_status())
    assert snap_compare(dashboard_app(source=source), terminal_size=size, run_before=settle)


@SIZES
def test_long_names_and_large_numbers(snap_compare: Any, size: tuple[int, int]) -> None:
    source = dashboard_source(long_status(), spend_by_day=long_spend())
    assert snap_compare(dashboard_app(source=source), terminal_size=size, run_before=settle)


@SIZES
def test_alert_states(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(dashboard_app(source=alert_states_source()), terminal_size=size, run_before=settle)


@SIZES
def test_month_chart(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(dashboard_app(), terminal_size=size, run_before=pressing("s"))


def test_traffic_tab(snap_compare: Any) -> None:
    assert snap_compare(dashboard_app(), terminal_size=(80, 24), run_before=pressing("t"))


def test_endpoint_detail(snap_compare: Any) -> None:
    assert snap_compare(dashboard_app(), terminal_size=(120, 40), run_before=pressing("enter"))


@SIZES
def test_endpoint_whatif(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(dashboard_app(), terminal_size=size, run_before=pressing("enter", "w"))


def test_pause_confirmation(snap_compare: Any) -> None:
    assert snap_compare(dashboard_app(), terminal_size=(80, 24), run_before=pressing("p"))
