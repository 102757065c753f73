"""The seed's pre-launch checklist ("checklist strategique avant tout nouveau modele"), automated where it can
be (``runpod-watchdog checklist ENDPOINT``):

1. model size in FP16 then INT4, and the Docker build plan updated: **manual** (nothing here can see a
   model or a Dockerfile); the answers are recorded with ``--answer KEY=VALUE`` in a small JSON file;
2. the cost per 1,000 requests recomputed from the measured latency: from the ledger's jobs (execution
   time) and its spend, against the alert level ``slack.cost_per_1000_alert_usd``;
3. idle timeout, execution timeout and max workers set as the policy wants: from the ledger's latest
   configuration of the endpoint, or a live read (``--live``, through ``RunPodClient.from_config``);
4. the endpoint on the cost dashboard and the alerts tested: the daemon has seen it, its policy watches it,
   and an alert naming it was delivered (the ledger's alerts);
5. the impact documented for funders: the month's report written (``runpod-watchdog report``).

Exit status: 0 every check passed and every manual step is answered, 1 otherwise, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from watchdog.client import RunPodClient
from watchdog.clock import month_start
from watchdog.config import Config, Secrets
from watchdog.errors import RunPodError
from watchdog.ledger import ConfigRow
from watchdog.money import usd_to_eur
from watchdog.reports.chart import spend_chart
from watchdog.reports.month import month_figures, month_label
from watchdog.reports.render import write_report
from watchdog.reports.source import ReportLedger

WINDOW_DAYS = 30.0
"""The measured latency and cost come from the last 30 days."""


class ChecklistError(ValueError):
    """Bad usage or configuration (exit 2)."""


@dataclass(frozen=True, slots=True)
class ManualStep:
    key: str
    question: str
    check: Callable[[str], str | None]
    """The answer's problem, or None when the answer is acceptable."""


def _positive_number(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return "expected a number of gigabytes"
    return None if number > 0 else "expected a size above 0"


def _done(value: str) -> str | None:
    return (
        "answered 'no': update the Docker build plan first"
        if value.strip().lower() in ("no", "n", "false")
        else None
    )


MANUAL_STEPS: tuple[ManualStep, ...] = (
    ManualStep("model_size_fp16_gb", "model size in FP16, GB (e.g. 14.5 for a 7B model)", _positive_number),
    ManualStep("model_size_int4_gb", "model size quantised to INT4, GB (e.g. 4)", _positive_number),
    ManualStep(
        "docker_build_plan",
        "Docker build plan updated for the quantised model (yes, or where it is: a link or a path)",
        _done,
    ),
)


@dataclass(frozen=True, slots=True)
class Check:
    step: int
    title: str
    status: str
    """PASS, FAIL or TODO (a manual step not answered)."""
    detail: str


def answers_path(args_path: str | None, endpoint_id: str) -> Path:
    return Path(args_path) if args_path else Path(f"checklist-{endpoint_id}.json")


def load_answers(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ChecklistError(f"cannot read the answers file {path}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ChecklistError(f"{path} must hold a JSON object of text answers")
    return {str(k): v for k, v in data.items()}


def record_answers(path: Path, answers: dict[str, str], given: list[str]) -> dict[str, str]:
    """Validate ``KEY=VALUE`` answers, merge them into ``answers`` and write the file (atomically)."""
    known = {step.key: step for step in MANUAL_STEPS}
    updated = dict(answers)
    for item in given:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in known:
            raise ChecklistError(f"--answer {item!r}: expected KEY=VALUE with KEY one of {', '.join(known)}")
        if not value:
            raise ChecklistError(f"--answer {item!r}: the answer is empty")
        problem = known[key].check(value)
        if problem and known[key].check is _positive_number:
            raise ChecklistError(f"--answer {item!r}: {problem}")
        updated[key] = value
    if given:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(updated, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    return updated


def _config_check(config: Config, row: ConfigRow | None, live: Any, endpoint_id: str, name: str) -> Check:
    title = "idle timeout, execution timeout and max workers set as the policy wants"
    if live is not None:
        settings = {
            "idle_timeout_s": live.idle_timeout_s,
            "execution_timeout_ms": live.execution_timeout_ms,
            "workers_max": live.workers_max,
            "workers_min": live.workers_min,
            "workers_standby": live.workers_standby,
        }
        where = "RunPod (live read)"
    elif row is not None:
        settings = {
            "idle_timeout_s": row.idle_timeout_s,
            "execution_timeout_ms": row.execution_timeout_ms,
            "workers_max": row.workers_max,
            "workers_min": row.workers_min,
            "workers_standby": row.workers_standby,
        }
        where = "the ledger's latest observation"
    else:
        return Check(3, title, "FAIL", "the daemon never recorded this endpoint's settings (is it watched?)")
    policy = config.policy_for(endpoint_id, name)
    problems = []
    timeout = settings["execution_timeout_ms"]
    if not timeout:
        problems.append("no execution timeout (the incident's condition)")
    elif timeout > policy.required_execution_timeout_s * 1000:
        problems.append(f"execution timeout {timeout / 1000:g} s > {policy.required_execution_timeout_s} s")
    if settings["idle_timeout_s"] > policy.max_idle_timeout_s:
        problems.append(f"idle timeout {settings['idle_timeout_s']} s > {policy.max_idle_timeout_s} s")
    if settings["workers_max"] > policy.max_workers:
        problems.append(f"max workers {settings['workers_max']} > {policy.max_workers}")
    if settings["workers_min"] > policy.max_workers_min:
        problems.append(f"active workers {settings['workers_min']} > {policy.max_workers_min}")
    if settings["workers_standby"] > policy.max_workers_standby:
        problems.append(f"standby workers {settings['workers_standby']} > {policy.max_workers_standby}")
    shown = (
        f"idle timeout {settings['idle_timeout_s']} s, execution timeout "
        f"{(timeout or 0) / 1000:g} s, max workers {settings['workers_max']}, active "
        f"{settings['workers_min']}"
    )
    if problems:
        return Check(3, title, "FAIL", f"{'; '.join(problems)} (from {where})")
    return Check(3, title, "PASS", f"{shown} (from {where})")


async def _live_endpoint(config: Config, secrets: Secrets, endpoint_id: str, transport: Any) -> Any:
    if secrets.runpod_api_key is None:
        raise ChecklistError("--live needs RUNPOD_API_KEY")
    async with RunPodClient.from_config(config.runpod, secrets.runpod_api_key, transport=transport) as client:
        return await client.get_endpoint(endpoint_id)


def run_checklist_command(
    config: Config,
    secrets: Secrets,
    args: argparse.Namespace,
    *,
    now: float,
    out: TextIO,
    transport: Any = None,
) -> int:
    with ReportLedger.open(config.ledger.resolved_path) as ledger:
        configs = ledger.latest_configs()
        known = [e for e in ledger.endpoint_ids() if e]
        endpoint_id = next(
            (e for e in known if args.endpoint in (e, configs[e].name if e in configs else None)), None
        )
        if endpoint_id is None:
            raise ChecklistError(
                f"no endpoint {args.endpoint!r} in the ledger (known: {', '.join(known) or 'none'})"
            )
        row = configs.get(endpoint_id)
        name = row.name if row else ""
        path = answers_path(args.answers_file, endpoint_id)
        answers = record_answers(path, load_answers(path), list(args.answer))
        window_start = now - WINDOW_DAYS * 86_400
        jobs = ledger.jobs(window_start, now, endpoint_id)
        hours = [
            h
            for h in ledger.hourly_spend(window_start - window_start % 3600, now)
            if h["endpoint_id"] == endpoint_id
        ]
        minutes = ledger.request_minutes(window_start, now, endpoint_id)
        sessions = ledger.sessions(window_start, now, endpoint_id)
        alerts = ledger.sent_alerts_naming(endpoint_id, name or None)
        start = month_start(now)
        figures = month_figures(ledger, config, start, now=now)
    live = None
    if args.live:
        try:
            live = asyncio.run(_live_endpoint(config, secrets, endpoint_id, transport))
        except RunPodError as exc:
            raise ChecklistError(f"--live: RunPod could not be read: {exc}") from None

    checks: list[Check] = []
    for step in MANUAL_STEPS:
        value = answers.get(step.key)
        if value is None:
            checks.append(
                Check(
                    1,
                    f"{step.question}",
                    "TODO",
                    f"manual: record it with --answer {step.key}=VALUE ({path})",
                )
            )
            continue
        problem = step.check(value)
        checks.append(
            Check(1, step.question, "FAIL" if problem else "PASS", problem or f"{step.key} = {value}")
        )

    rate = config.budget.usd_per_eur
    execution = [j.execution_ms / 1000 for j in jobs if j.execution_ms]
    requests = sum(minutes.values())
    spent = sum(h["usd"] for h in hours)
    threshold = config.slack.cost_per_1000_alert_usd
    title2 = "cost per 1,000 requests recomputed from the measured latency"
    if not execution or not requests:
        checks.append(
            Check(
                2,
                title2,
                "FAIL",
                f"no measured latency or no requests in the last {WINDOW_DAYS:g} days: run traffic",
            )
        )
    else:
        latency = sum(execution) / len(execution)
        used = Counter(s.gpu_type_id for s in sessions if s.gpu_type_id)
        gpu = config.price_table.lookup(used.most_common(1)[0][0] if used else _gpu_of(row, config))
        execution_only = latency * gpu.flex_usd_per_s * 1000
        real = spent * 1000 / requests
        detail = (
            f"measured latency {latency:.2f} s ({len(execution):,} jobs): execution alone "
            f"${execution_only:.2f} "
            f"per 1,000 on {gpu.gpu_type_id}; the real bill ${real:.2f} per 1,000 "
            f"({usd_to_eur(real, rate):.2f} €) over {requests:,} requests; alert level ${threshold:g}"
        )
        checks.append(Check(2, title2, "PASS" if real <= threshold else "FAIL", detail))

    checks.append(_config_check(config, row, live, endpoint_id, name))

    policy = config.policy_for(endpoint_id, name)
    title4 = "on the cost dashboard, and an alert delivered end to end"
    seen = row is not None
    if not seen or not policy.watched:
        checks.append(
            Check(4, title4, "FAIL", "the daemon does not watch it (policy.watch)" if seen else "never seen")
        )
    elif not alerts:
        checks.append(
            Check(
                4,
                title4,
                "FAIL",
                "seen and watched, but no alert naming it was delivered yet: test the alerts",
            )
        )
    else:
        last = alerts[-1]
        checks.append(
            Check(
                4,
                title4,
                "PASS",
                f"watched; {len(alerts)} alert(s) delivered, last: {last['kind']} at {last['sent_utc']}",
            )
        )

    report_dir = Path(args.report_dir) if args.report_dir else path.parent
    written = write_report(figures, "md", report_dir, spend_chart(figures))
    checks.append(
        Check(
            5,
            "impact documented for funders",
            "PASS",
            f"{month_label(start)} report written: {written[0]} ({figures.eur(figures.total_usd):.2f} € of "
            f"{figures.budget_eur:.2f} €)",
        )
    )

    label = f"{name} ({endpoint_id})" if name else endpoint_id
    print(f"Pre-launch checklist for {label}", file=out)
    for check in sorted(checks, key=lambda c: c.step):
        print(f"[{check.status}] {check.step}. {check.title}: {check.detail}", file=out)
    failed = sum(1 for c in checks if c.status == "FAIL")
    todo = sum(1 for c in checks if c.status == "TODO")
    if failed or todo:
        print(f"Result: NOT READY ({failed} failed, {todo} manual step(s) to answer)", file=out)
        return 1
    print("Result: READY (every check passed)", file=out)
    return 0


def _gpu_of(row: ConfigRow | None, config: Config) -> str | None:
    prices = config.price_table
    if row is None:
        return None
    candidates = [g for g in prices.gpus if g.pool in row.gpu_pools or g.gpu_type_id in row.gpu_pools]
    return max(candidates, key=lambda g: g.flex_usd_per_s).gpu_type_id if candidates else None
