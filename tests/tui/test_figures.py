"""The figures a sysadmin reads must add up, be in euros, and never be cut in the middle.

Pure functions, no terminal: the cost per 1,000 requests, the month's request count, the free share, the
month's chart (brake day, cumulative line), the words the daemon's texts and answers become, and the
wrapping that never splits ``12,345.67 €``.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from dashboard_fixtures import (
    FIXED_NOW,
    HUNG_ID,
    MONTH_START,
    dashboard_status,
    hermes_history,
    hung_endpoint,
    known_alerts,
    long_status,
    story_spend,
)
from hypothesis import given
from hypothesis import strategies as st
from rich.text import Text

from tui.source import LedgerView, describe_result
from tui.widgets.budget_panel import budget_text
from tui.widgets.events_log import event_rows, plain_words
from tui.widgets.month_chart import endpoint_plan, month_plan
from tui.widgets.state import (
    MIN_REQUESTS_FOR_COST,
    cost_per_1000,
    flow,
    free_share_words,
    month_requests,
    wrap,
)

# ------------------------------------------------------------------------------------------------------------
# Cost per 1,000 requests and the month's count
# ------------------------------------------------------------------------------------------------------------


def test_cost_per_1000_from_a_handful_of_requests_is_not_shown() -> None:
    status = long_status()
    tiny = status.endpoints[1]
    assert tiny.cost_per_1000_month_usd == 7_673.0  # what the daemon computed from 12 requests
    cost = cost_per_1000(tiny, status)
    assert cost.eur is None
    assert cost.short() == "n/a"
    assert cost.words() == f"n/a (12 requests; needs {MIN_REQUESTS_FOR_COST})"


def test_cost_per_1000_is_in_euros_and_judged_against_the_converted_target() -> None:
    status = dashboard_status()
    cost = cost_per_1000(hung_endpoint(), status)
    assert cost.eur == pytest.approx(4.8 / 1.08)
    assert cost.basis == "month"
    assert cost.over  # $4.80 > the $3.00 target


def test_a_partial_month_count_is_shown_as_at_least_the_last_24_hours_since_the_restart() -> None:
    status = long_status()
    restarted = status.endpoints[2]
    assert restarted.requests_month < restarted.requests_24h
    month = month_requests(restarted, status)
    assert month.partial and month.shown == 1_608
    assert month.words() == "≥ 1,608 (month count partial since 18 Jun)"
    # and the month's inflated cost per 1,000 (from the partial count) gives way to the last 24 hours'
    assert cost_per_1000(restarted, status).basis == "24 h"


def test_on_the_first_of_the_month_fewer_requests_than_in_24_hours_is_normal() -> None:
    status = dataclasses.replace(dashboard_status(), last_tick_at=MONTH_START + 3600)
    endpoint = dataclasses.replace(hung_endpoint(), requests_month=10, requests_24h=500)
    month = month_requests(endpoint, status)
    assert not month.partial and month.words() == "10"


def test_the_free_share_says_its_basis_and_an_implausible_one_gets_no_euro_figure() -> None:
    configured, plausible = free_share_words(0.30, False, 3.36)
    assert plausible and configured == "free 3.36 € (30 % of requests, configured share)"
    measured, plausible = free_share_words(0.34, True, 3.80)
    assert plausible and "measured in the logs" in measured
    bot, plausible = free_share_words(0.99, True, 8.12)
    assert not plausible
    assert "8.12" not in bot and "implausible" in bot


# ------------------------------------------------------------------------------------------------------------
# The month's chart
# ------------------------------------------------------------------------------------------------------------


def test_month_plan_adds_up_and_finds_the_day_the_brake_would_fire() -> None:
    status = dashboard_status()
    assert status.budget is not None and status.targets is not None
    plan = month_plan(status.budget, status.targets.brake_at, story_spend(), FIXED_NOW)
    assert plan.month == "June 2026" and plan.days == 30
    assert plan.spent[0] == (0.0, 5.00)  # the fixed costs count from the 1st
    assert plan.spent[-1] == (pytest.approx(19.5), 16.20)  # today: the budget panel's figure
    assert all(a[1] <= b[1] for a, b in zip(plan.spent, plan.spent[1:], strict=False))
    assert plan.projection[-1] == (30.0, 23.90)
    # 0.733 €/day from 16.20 € reaches 19.00 € (95 %) 3.8 days later: on the 24th
    assert plan.marker is not None and plan.marker[1] == "brake 19.00 € ~24 Jun"
    assert "fires on ~24 Jun" in plan.summary
    assert "(over budget)" in plan.summary


def test_month_plan_when_the_brake_is_already_reached_or_never() -> None:
    status = dashboard_status()
    assert status.budget is not None
    reached = month_plan(status.budget, 0.5, story_spend(), FIXED_NOW)
    assert reached.marker is not None and "reached on" in reached.summary
    calm = dataclasses.replace(status.budget, forecast_eur=16.50)
    never = month_plan(calm, 0.95, story_spend(), FIXED_NOW)
    assert never.marker is None and "would not fire this month" in never.summary


def test_month_plan_without_the_ledger_still_ends_at_the_status_figure() -> None:
    status = dashboard_status()
    assert status.budget is not None
    plan = month_plan(status.budget, 0.95, None, FIXED_NOW)
    assert plan.spent == ((0.0, 5.0), (pytest.approx(19.5), 16.20))
    assert "unavailable" in plan.summary


def test_endpoint_plan_projects_its_own_average() -> None:
    status = dashboard_status()
    plan = endpoint_plan(hung_endpoint(), status.budget, hermes_history().spend_by_day, FIXED_NOW)
    assert plan.spent[-1][1] == 8.95
    assert plan.projection[-1][1] == pytest.approx(8.95 / 19.5 * 30)
    assert "hermes-llm: 8.95 € this month" in plan.summary


# ------------------------------------------------------------------------------------------------------------
# Words, not Slack codes, dollars or Python dicts
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("daemon_text", "terminal_text"),
    [
        (":white_check_mark: Did cancel job (saves 1.20 €)", "Did cancel job (saves 1.20 €)"),
        (":rotating_light: Budget 80 % reached at 14:31:36", "Budget 80 % reached at 14:31:36"),
        ("ratio 3:1:2 kept", "ratio 3:1:2 kept"),
        ("would bill up to €161.94 more", "would bill up to 161.94 € more"),
        (
            "costs $155.74 per 1,000 requests (limit $3.00)",
            "costs 144.20 € per 1,000 requests (limit 2.78 €)",
        ),
        ("execution_timeout_ms is None (allowed 600000)", "execution_timeout_ms is not set (allowed 600000)"),
    ],
)
def test_daemon_texts_become_plain_words_in_euros(daemon_text: str, terminal_text: str) -> None:
    assert plain_words(daemon_text, 1.08) == terminal_text


def test_one_row_per_alert_with_its_ledger_state_and_no_duplicate_decision_rows() -> None:
    rows = event_rows(dashboard_status(), LedgerView(alerts=known_alerts(), spend_by_day=story_spend()))
    alerts = [row for row in rows if row.kind == "alert"]
    assert sorted(row.state for row in alerts) == ["acked", "failed", "pending", "sent"]
    assert not any(row.what.startswith("Alert:") for row in rows)  # "alert (applied): …" is not repeated
    assert not any(":" in row.what.split(" ")[0] and row.what.startswith(":") for row in rows)
    failed = next(row for row in alerts if row.state == "failed")
    assert "delivery failed after 3 attempts: Slack answered 503" in failed.what
    proposal = next(row for row in rows if row.kind == "proposal")
    assert proposal.what.startswith("Cancel job: job 8f2c1e7a-hung-u1 in progress")
    assert proposal.state == "proposed"
    everything = " ".join(row.what for row in rows)
    assert "$" not in everything and "€1" not in everything and "None" not in everything


def test_without_the_ledger_alerts_come_from_the_status_with_an_unknown_state() -> None:
    rows = event_rows(dashboard_status(), LedgerView(problem="no ledger at /x"))
    alerts = [row for row in rows if row.kind == "alert"]
    assert len(alerts) == 2 and {row.state for row in alerts} == {"unknown"}
    assert not any(row.what.startswith("Alert:") for row in rows)


@pytest.mark.parametrize(
    ("kind", "answer", "words"),
    [
        (
            "pause",
            {"ok": True, "results": [{"endpoint_id": HUNG_ID, "action": "pause", "outcome": "applied"}]},
            f"Pause {HUNG_ID}: done",
        ),
        (
            "cancel_job",
            {
                "ok": False,
                "results": [
                    {"endpoint_id": HUNG_ID, "action": "cancel_job", "outcome": "failed", "error": "HTTP 404"}
                ],
            },
            f"Cancel job {HUNG_ID}: FAILED (HTTP 404)",
        ),
        (
            "ack_alert",
            {"ok": True, "acknowledged": "budget:2026-06:0.8"},
            "Alert budget:2026-06:0.8 acknowledged",
        ),
        (
            "set_rule_mode",
            {
                "ok": True,
                "rule": "runaway_job",
                "mode": "enforce",
                "overrides": {"runaway_job|ep": "enforce"},
            },
            "Rule runaway_job is now ENFORCE.",
        ),
        ("restore", {"ok": True, "results": []}, "Restore: nothing to do"),
        ("pause", {"message": "pause queued as command 7"}, "pause queued as command 7"),
    ],
)
def test_the_daemons_answer_is_told_in_words_never_as_a_dict(
    kind: str, answer: dict[str, object], words: str
) -> None:
    told = describe_result(kind, answer)
    assert told.startswith(words)
    assert not re.search(r"[{}\[\]]|=|'", told.replace("budget:2026-06:0.8", ""))


# ------------------------------------------------------------------------------------------------------------
# Never cut in the middle of a value
# ------------------------------------------------------------------------------------------------------------

VALUES = ("12,345.67 €", "61,901 %", "1,234,567", "45 s", "▲ HUNG")


@given(width=st.integers(min_value=20, max_value=90))
def test_wrapping_never_splits_a_value(width: int) -> None:
    text = Text(
        "Budget 80 % reached: 12,345.67 € of 20.00 € (61,901 %) with 1,234,567 requests,"
        " the oldest job ▲ HUNG for 45 s; left alone it would bill up to 12,345.67 € more"
    )
    lines = [line.plain for line in wrap(text, width)]
    joined = " ".join(lines)
    for value in VALUES:
        assert value in joined, (value, lines)
    assert all(len(line) <= width for line in lines)


@given(width=st.integers(min_value=20, max_value=120))
def test_flow_keeps_every_chunk_whole(width: int) -> None:
    chunks = ["fixed 5.00 €", "RunPod 12,375.12 €", "forecast 19,000.00 €", "10.5 days left", "0.00 €/day"]
    lines = flow(chunks, width).plain.split("\n")
    for chunk in chunks:
        assert any(chunk in line for line in lines)


def test_the_budget_panel_names_the_brake_day_the_plan_command_computes() -> None:
    """One date everywhere: the panel's "fires ~24 Jun" is watchdog.money.brake_fires_at's, as in ``plan``
    and on the month chart."""
    status = dashboard_status()
    text = budget_text(status, 78).plain
    assert "brake at 95 % fires ~24 Jun at this rate" in text
    assert status.budget is not None
    calm = dataclasses.replace(status, budget=dataclasses.replace(status.budget, forecast_eur=12.0))
    assert "brake" not in budget_text(calm, 78).plain  # no spend to come that reaches it this month


def test_with_graphql_gone_the_budget_panel_says_the_balance_is_unknown() -> None:
    status = dashboard_status()
    known = dataclasses.replace(status, balance_usd=41.5, spend_rate_cap_usd_per_hr=80.0)
    assert "RunPod balance 38.43 €" in budget_text(known, 120).plain  # $41.50 at the fixture's 1.08
    assert "RunPod's cap $80.00/h at worker start" in budget_text(known, 120).plain
    gone = dataclasses.replace(status, account_problem="Gone: GraphQL is retired (410)")
    text = budget_text(gone, 120).plain
    assert "balance unknown" in text and "RunPod balance" not in text
