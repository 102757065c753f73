"""One live read of the account through the client, as text for a human (``runpod-watchdog snapshot``).

Endpoints (with their limits), workers by status, ``/health`` counters and the month's billed spend. It
reads only (no ledger, no action), so it is safe to run beside the daemon. The command's body (exit
codes, printing) is in :mod:`watchdog.cli`.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import httpx

from watchdog.client import RunPodClient
from watchdog.clock import SystemClock, month_start, to_iso
from watchdog.config import Config, Secret
from watchdog.money import usd_to_eur


async def snapshot_text(
    config: Config,
    api_key: Secret,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    now: float | None = None,
) -> str:
    """The account as one read shows it, for a human. Raises RunPodError when it cannot be read."""
    now = SystemClock().now() if now is None else now
    lines: list[str] = []
    async with RunPodClient.from_config(config.runpod, api_key, transport=transport) as client:
        endpoints = await client.list_endpoints()
        lines.append(f"RunPod snapshot at {to_iso(now)}: {len(endpoints)} endpoint(s)")
        for endpoint in sorted(endpoints, key=lambda e: e.id):
            workers = await client.list_workers(endpoint.id)
            health = await client.health(endpoint.id)
            timeout = (
                f"{endpoint.execution_timeout_ms / 1000:g} s" if endpoint.execution_timeout_ms else "NONE"
            )
            lines.append(
                f"  {endpoint.id}  {endpoint.name!r}: workers min {endpoint.workers_min} / max "
                f"{endpoint.workers_max}, idle timeout {endpoint.idle_timeout_s} s, "
                f"execution timeout {timeout}"
            )
            by_status = Counter(w.status.value for w in workers.workers)
            shown = ", ".join(f"{n} {s.lower()}" for s, n in sorted(by_status.items())) or "none"
            lines.append(f"    workers: {shown}")
            for worker in workers.workers:
                lines.append(f"      {worker.id}  {worker.status.value:<12} {worker.gpu_type_id or '?'}")
            lines.append(
                f"    health: {health.jobs_in_progress} in progress, {health.jobs_in_queue} queued, "
                f"{health.jobs_completed} completed, {health.jobs_failed} failed, "
                f"{health.jobs_retried} retried"
            )
        billing = await client.serverless_billing(start=month_start(now), bucket_size="hour")
    rate = config.budget.usd_per_eur
    lines.append(
        f"Billed this month (RunPod, lags by hours): ${billing.total_usd:.2f} = "
        f"{usd_to_eur(billing.total_usd, rate):.2f} € of the {config.budget.monthly_eur:.2f} € budget "
        f"(plus {usd_to_eur(config.budget.fixed_usd_per_month, rate):.2f} € fixed costs)"
    )
    per_endpoint: defaultdict[str, float] = defaultdict(float)
    for record in billing.records:
        per_endpoint[record.endpoint_id or "(account)"] += record.total_usd
    for endpoint_id, usd in sorted(per_endpoint.items()):
        lines.append(f"  {endpoint_id}: ${usd:.2f} ({usd_to_eur(usd, rate):.2f} €)")
    return "\n".join(lines)
