"""The BI views of ledger migration ``0004_report_views``, documented: names, meaning, columns.

The SQL lives in :mod:`watchdog.ledger` (the migration); this is the contract readers rely on (Metabase,
Datasette, ``runpod-watchdog report``) and the text ``docs/funders.md`` shows. A test checks that every
view answers with exactly these columns. Money is USD as RunPod bills it (divide by ``budget.usd_per_eur``
for euros); ``basis`` says whether a figure is RunPod's bill or the daemon's live estimate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class View:
    name: str
    about: str
    columns: tuple[tuple[str, str], ...]


_DAY = ("day", "UTC day, YYYY-MM-DD")
_MONTH = ("month", "UTC month, YYYY-MM")
_ENDPOINT = ("endpoint_id", "RunPod endpoint id ('' = billed spend RunPod attributes to no endpoint)")

VIEW_DOCS: tuple[View, ...] = (
    View(
        "hourly_spend",
        "Spend per endpoint and UTC hour: RunPod's bill where it exists, else the live estimate.",
        (
            _ENDPOINT,
            ("hour", "start of the hour, epoch seconds"),
            ("hour_utc", "start of the hour, ISO 8601"),
            _DAY,
            _MONTH,
            ("estimate_usd", "the daemon's live estimate for the hour"),
            ("billed_usd", "RunPod's bill for the hour (NULL: not billed yet)"),
            ("usd", "what counts: billed_usd when billed, else estimate_usd"),
            ("basis", "'billed' or 'estimate'"),
            ("drift_usd", "billed_usd - estimate_usd on billed hours (positive: the estimate was low)"),
            ("gpu_seconds_total", "GPU-seconds in billed worker states (live measure)"),
        ),
    ),
    View(
        "daily_spend",
        "Spend per endpoint and UTC day (hourly rows summed; days older than the raw retention come from "
        "the daily rollup, where the bill counts for the whole day once any hour of it was billed).",
        (
            _ENDPOINT,
            ("day_start", "start of the day, epoch seconds"),
            _DAY,
            _MONTH,
            ("usd", "what counts (see hourly_spend.usd)"),
            ("estimate_usd", "the live estimate"),
            ("billed_usd", "RunPod's bill (NULL: no hour of the day billed yet)"),
            ("drift_usd", "billed - estimate over the billed hours"),
            ("billed_hours", "hours counted from the bill"),
            ("estimate_only_hours", "hours counted from the estimate (not billed yet)"),
            ("basis", "'billed', 'estimate' or 'mixed'"),
            ("gpu_seconds_total", "GPU-seconds in billed worker states"),
        ),
    ),
    View(
        "daily_requests",
        "Requests per endpoint and UTC day: per minute the larger of the logs' count and /health's.",
        (
            _ENDPOINT,
            ("day_start", "start of the day, epoch seconds"),
            _DAY,
            _MONTH,
            ("requests", "requests received"),
            ("pings", "worker heartbeats seen in the logs"),
        ),
    ),
    View(
        "cold_starts",
        "One row per worker session the daemon saw; each began with a cold start. Seconds have the "
        "daemon's poll resolution.",
        (
            _ENDPOINT,
            ("worker_id", "RunPod worker id"),
            ("gpu_type_id", "GPU type the worker ran on"),
            ("started_at", "when the daemon first saw the worker, epoch seconds"),
            ("started_utc", "the same, ISO 8601"),
            _DAY,
            _MONTH,
            ("ended_at", "when the worker was gone (NULL: still alive)"),
            ("cold_start_seconds", "seconds INITIALIZING (the cold start)"),
            ("running_s", "seconds running jobs"),
            ("idle_s", "seconds idle (the idle-timeout tail)"),
            ("gpu_seconds_total", "cold start + running + idle seconds"),
            ("estimated_usd", "the live estimate of this session"),
        ),
    ),
    View(
        "daily_indicators",
        "The seed's three dashboard indicators per endpoint and UTC day.",
        (
            _ENDPOINT,
            _DAY,
            _MONTH,
            ("requests", "requests received"),
            ("usd", "spend that counts (bill, else estimate)"),
            ("basis", "'billed', 'estimate' or 'mixed' (NULL: no spend)"),
            ("cost_per_1000_requests", "usd x 1000 / requests, USD (NULL without requests; alert above $3)"),
            ("gpu_seconds_total", "GPU-seconds in billed worker states"),
            ("cold_starts", "worker sessions started"),
            ("cold_start_seconds", "mean cold start, seconds (target: under 15)"),
            ("cold_start_seconds_max", "longest cold start, seconds"),
        ),
    ),
    View(
        "alert_log",
        "Every alert, with its delivery state.",
        (
            ("key", "the alert's identity"),
            ("kind", "budget, action, drift, traffic, cost, cold_start, blind, ..."),
            ("severity", "info, warning or critical"),
            ("created_at", "epoch seconds"),
            ("created_utc", "ISO 8601"),
            _DAY,
            _MONTH,
            ("text", "the message"),
            ("eur", "the euro figure it carries, if any"),
            ("state", "'pending', 'sent' or 'failed'"),
            ("delivered", "1 once delivered"),
            ("attempts", "delivery attempts"),
            ("sent_at", "epoch seconds (NULL: not delivered)"),
            ("sent_utc", "ISO 8601"),
            ("last_error", "why the last attempt failed"),
            ("acknowledged_at", "when a person acknowledged it"),
        ),
    ),
    View(
        "action_log",
        "Every step of every decision the watchdog took (enforce) or proposed (dry-run).",
        (
            ("id", "step id"),
            ("at", "epoch seconds"),
            ("at_utc", "ISO 8601"),
            _DAY,
            _MONTH,
            (
                "rule",
                "runaway_job, idle_leak, crash_loop, budget_brake, suspicious_traffic, config_drift, ...",
            ),
            ("action", "cancel_job, scale_to_zero, patch_config, pause, alert, ..."),
            ("endpoint_id", "the endpoint concerned"),
            ("job_id", "the job concerned"),
            ("worker_id", "the worker concerned"),
            ("mode", "'enforce' or 'dry-run'"),
            ("outcome", "intended, proposed, applied, failed, verified, not_verified, skipped"),
            ("reason", "why, in words"),
            ("saved_usd", "money saved (enforce) or that would have been saved (dry-run)"),
            ("counts_as_saving", "1 for the steps whose saved_usd counts (proposed or applied)"),
            ("error", "what went wrong, if anything"),
            ("dedupe_key", "groups the steps of one decision"),
        ),
    ),
    View(
        "monthly_savings",
        "Money saved (enforce) or that would have been saved (dry-run) per month, endpoint, rule and mode.",
        (
            _MONTH,
            _ENDPOINT,
            ("rule", "the rule that acted"),
            ("mode", "'enforce' or 'dry-run'"),
            ("actions", "proposed or applied steps"),
            ("saved_usd", "sum of saved_usd over those steps"),
        ),
    ),
    View(
        "monthly_summary",
        "One row per endpoint and month: spend, requests, indicators, savings.",
        (
            _ENDPOINT,
            _MONTH,
            ("usd", "spend that counts (bill, else estimate)"),
            ("estimate_usd", "the live estimate"),
            ("drift_usd", "billed - estimate over the billed hours"),
            ("billed_hours", "hours counted from the bill"),
            ("estimate_only_hours", "hours counted from the estimate"),
            ("requests", "requests received"),
            ("cost_per_1000_requests", "usd x 1000 / requests"),
            ("gpu_seconds_total", "GPU-seconds in billed worker states"),
            ("cold_starts", "worker sessions started"),
            ("cold_start_seconds", "mean cold start, seconds"),
            ("saved_usd_enforce", "money the watchdog saved"),
            ("saved_usd_dry_run", "money it would have saved in enforce mode"),
        ),
    ),
)

VIEWS: tuple[str, ...] = tuple(view.name for view in VIEW_DOCS)
"""The view names, in the migration's order."""
SEED_INDICATORS = ("cold_start_seconds", "gpu_seconds_total", "cost_per_1000_requests")
"""The seed's Metabase indicators, by name: columns of ``daily_indicators``."""


def views_markdown() -> str:
    """The views as Markdown (for docs/funders.md)."""
    lines = []
    for view in VIEW_DOCS:
        lines += [f"### `{view.name}`", "", view.about, "", "| column | meaning |", "|---|---|"]
        lines += [f"| `{column}` | {meaning} |" for column, meaning in view.columns]
        lines.append("")
    return "\n".join(lines)
