"""Snapshots of the dashboard at the two sizes it promises (80x24 usable, 120x40 comfortable).

The status, the clock and the terminal size are fixed, so an SVG changes only when what a sysadmin would
see changes. Regenerate deliberately with ``pytest tests/tui --snapshot-update`` and review the diff.
"""

from __future__ import annotations

from typing import Any

import pytest
from dashboard_fixtures import dashboard_app, dashboard_source
from textual.pilot import Pilot


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_dashboard(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(dashboard_app(), terminal_size=size, run_before=settle)


def test_daemon_down(snap_compare: Any) -> None:
    source = dashboard_source(
        live=False, problem="the daemon is not running (no control socket at /run/w.sock)"
    )
    assert snap_compare(dashboard_app(source=source), terminal_size=(80, 24), run_before=settle)


def test_endpoint_detail(snap_compare: Any) -> None:
    async def open_detail(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(dashboard_app(), terminal_size=(120, 40), run_before=open_detail)


def test_pause_confirmation(snap_compare: Any) -> None:
    async def ask_to_pause(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)

    assert snap_compare(dashboard_app(), terminal_size=(80, 24), run_before=ask_to_pause)
