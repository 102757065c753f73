"""The day's allowance and the early-month forecast as people read them: the Slack alerts the policy words
(their kind, severity, mark and key: once a day each) and the status's figures for the day."""

from __future__ import annotations

from dataclasses import replace

import pytest

from watchdog.clock import from_iso
from watchdog.config import default_config
from watchdog.daemon.accounting import MonthMoney
from watchdog.daemon.execute import Execution
from watchdog.daemon.notices import decision_alert
from watchdog.daemon.publish import budget_view
from watchdog.daemon.state import Calendar
from watchdog.money import budget_status, day_start, month_to_date
from watchdog.policy import Decision, Severity
from watchdog.vocabulary import Action, Mode, Rule

NOW = from_iso("2026-06-10T15:00:00Z")
CONFIG = default_config(env={})
USD_PER_EUR = CONFIG.budget.usd_per_eur
BUDGET = budget_status(
    20.0,
    USD_PER_EUR,
    fixed_costs_usd_per_month=10.0,
    variable_mtd_usd=2.0,
    now=NOW,
    variable_last_24h_usd=1.0,
)


def _notice(severity: Severity, dedupe_key: str, reason: str, threshold: float | None = None) -> Decision:
    return Decision(
        rule=Rule.BUDGET_BRAKE,
        action=Action.ALERT,
        endpoint_id=None,
        mode=Mode.ENFORCE,
        reason=reason,
        severity=severity,
        dedupe_key=dedupe_key,
        threshold=threshold,
    )


@pytest.mark.parametrize(
    ("severity", "mark"),
    [("warning", ":warning:"), ("info", ":information_source:"), ("critical", ":rotating_light:")],
)
def test_a_budget_notice_without_a_threshold_is_a_budget_alert_in_the_policys_words(
    severity: Severity, mark: str
) -> None:
    key = f"budget_brake:alert:day:{day_start(NOW)}"
    decision = _notice(severity, key, "today's GPU spend €0.60 reached the day's allowance €0.54")
    alert = decision_alert(decision, Execution(), budget=BUDGET, usd_per_eur=USD_PER_EUR, now=NOW)
    assert alert is not None
    assert (alert.kind, alert.severity, alert.eur) == ("budget", severity, None)
    assert alert.text == f"{mark} Budget: today's GPU spend €0.60 reached the day's allowance €0.54"
    assert alert.key == f"budget:{key}:2026-06-10"  # the day in the key: once a day
    later = decision_alert(decision, Execution(), budget=BUDGET, usd_per_eur=USD_PER_EUR, now=NOW + 3600)
    assert later is not None and later.key == alert.key


def test_a_threshold_alert_keeps_its_own_wording_and_key() -> None:
    decision = _notice("critical", "budget_brake:alert:x:0.8", "80% used", threshold=0.8)
    alert = decision_alert(decision, Execution(), budget=BUDGET, usd_per_eur=USD_PER_EUR, now=NOW)
    assert alert is not None
    assert alert.key == "budget:2026-06:0.8"
    assert alert.text.startswith(":rotating_light: Budget 80 % reached:")


def _money(now: float) -> MonthMoney:
    today, yesterday = day_start(now), day_start(now) - 3600
    mtd = month_to_date({("ep1", yesterday): 1.0, ("ep1", today + 3600): 0.58}, {("*", today): 0.0}, now)
    return MonthMoney(mtd, 0.58, {"ep1": 0.58})


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_the_status_carries_todays_spend_and_the_allowance_when_on(on: bool) -> None:
    config = replace(CONFIG, budget=replace(CONFIG.budget, daily_allowance=on))
    money = _money(NOW)
    budget = budget_status(
        20.0,
        USD_PER_EUR,
        fixed_costs_usd_per_month=10.0,
        variable_mtd_usd=money.month.counted_usd,
        now=NOW,
    )
    view = budget_view(budget, money, Calendar.starting(NOW), config)
    assert view.spent_today_eur == pytest.approx(0.58 / USD_PER_EUR)
    if not on:
        assert view.daily_allowance_eur is None
        return
    # 20 € less the space and yesterday's 1 USD, over the 21 days from the 10th to the 30th
    assert view.daily_allowance_eur == pytest.approx((20.0 - 10.0 / USD_PER_EUR - 1.0 / USD_PER_EUR) / 21)
