"""``runpod-watchdog run``: the asyncio daemon that keeps a RunPod Serverless bill inside its budget.

Lifecycle (:func:`run_command`): load config and secrets (bad → exit 2), set up logging with the secrets
redacted, open the ledger (its lock refuses a second instance → exit 2), then run ticks every
``runpod.poll_interval_s`` until SIGTERM/SIGINT. Alongside the ticks run the alert dispatcher (Slack, or
the log without a webhook), the control socket (TUI commands), the Prometheus exporter, a WATCHDOG=1 task
at half of ``WATCHDOG_USEC`` under systemd, and hourly ledger retention. SIGTERM lets the tick in flight
finish (it is shielded), flushes, and exits 0. SIGHUP reloads the config (an invalid file keeps the old
one, logs every problem and queues an alert). A rejected API key at startup is fatal (exit 2).

Driving the daemon in tests (no subprocess, no sockets, no real time)::

    clock = ManualClock(start)
    sim = build_simulator("hung-job", clock=clock, access_log_path=str(tmp_path / "access.log"))
    daemon = Daemon(config, secrets, clock=clock, transport=httpx.ASGITransport(create_app(sim)))
    await daemon.open()            # ledger lock, client, restore from the ledger
    outcome = await daemon.tick()  # one whole tick; returns a TickOutcome
    clock.advance(5)
    ...
    await daemon.close()

``sim_harness.wiring.daemon_against(sim, tmp_path, **overrides)`` builds exactly that (config URLs pointed
at ``http://sim.test``, generous simulator rate limits, no retries, ledger and socket in ``tmp_path``).
:meth:`Daemon.command` runs a control command as the socket would; :meth:`Daemon.reload` re-reads the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys
from collections import defaultdict, deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from watchdog.alerts import AlertDispatcher
from watchdog.clock import Clock, SystemClock, month_start
from watchdog.config import RULES, Config, ConfigError, Secrets, load_config, load_secrets
from watchdog.errors import LedgerError, RunPodAuthError, RunPodError
from watchdog.executor import Execution, Executor, brake_entry
from watchdog.ledger import Alert, BrakeState, Ledger
from watchdog.ledger import Decision as LedgerDecision
from watchdog.logs import SecretRedactor, setup_logging
from watchdog.logwatch import LogEvent, LogPosition, LogSourceSpec, LogTailer
from watchdog.models import EndpointConfig
from watchdog.money import MonthToDate, usd_to_eur
from watchdog.policy import (
    ActionRecord,
    Decision,
    EndpointLimits,
    PolicySettings,
    restore_decisions,
)
from watchdog.sdnotify import SystemdNotifier
from watchdog.status import DaemonStatus, EventView, StatusRef
from watchdog.tick import HEALTH_SOURCE, TickOutcome, run_tick, status_json, status_line
from watchdog.tracker import Tracker, threshold_of

log = logging.getLogger("watchdog.daemon")

RETENTION_EVERY_S = 3600.0
MAX_EVENTS = 30
META_STATUS = "status"
META_LOG_POSITIONS = "log_positions"
META_BRAKE_RULES = "brake_rules"
META_RULE_OVERRIDES = "rule_overrides"
META_MONEY = "money"
META_TIERS = "tiers"


class StartupError(Exception):
    """The daemon cannot start (bad key, ledger held by another instance...); exit code 2."""


def _log_spec(source: Any) -> LogSourceSpec:
    """Adapter: config's ``[[pings.source]]`` → logwatch's LogSourceSpec (the field names differ)."""
    return LogSourceSpec(
        name=source.name,
        path=Path(source.path).expanduser(),
        format=source.format,
        regex=source.regex or None,
        ts_field=source.time_field,
        endpoint_field=source.endpoint_field,
        kind_field=source.kind_field,
        source_field=source.source_field,
        job_id_field=source.job_field,
        tier_field=source.tier_field,
        worker_id_field=source.worker_field,
    )


class Daemon:
    """The watchdog: state across ticks plus the I/O shell around :func:`watchdog.tick.run_tick`.

    Args:
        config: the loaded configuration (``config.ledger.resolved_path`` is where the ledger lives).
        secrets: ``runpod_api_key`` is required; ``slack_webhook_url`` optional (None → alerts to the log).
        clock: the daemon's time (tests share the simulator's ManualClock).
        transport: an httpx transport for the RunPod client (tests: ``httpx.ASGITransport(create_app(sim))``).
        notifier: systemd notifier (default: from the environment; a no-op outside systemd).
    """

    def __init__(
        self,
        config: Config,
        secrets: Secrets,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        if secrets.runpod_api_key is None:
            raise StartupError("RUNPOD_API_KEY is not set (environment or systemd credential)")
        self.config = config
        self.secrets = secrets
        self.clock: Clock = clock or SystemClock()
        self.transport = transport
        self.notifier = notifier or SystemdNotifier()
        self.status_ref = StatusRef()
        self.tracker = Tracker()
        self.ledger: Ledger = None  # type: ignore[assignment]  # set by open()
        self.client: Any = None
        self.executor: Executor = None  # type: ignore[assignment]
        self.dispatcher: AlertDispatcher | None = None
        self.tailers: list[LogTailer] = []
        self.lock = asyncio.Lock()
        self.started_at = self.clock.now()
        self.month = month_start(self.started_at)
        self.tick_count = 0
        self.accounted_until: float | None = None
        self.last_billing_at: float | None = None
        self.requests_month: defaultdict[str, int] = defaultdict(int)
        self.brakes: dict[str, BrakeState] = {}
        self.brake_rules: dict[str, str] = {}
        self.pending_brakes_set: list[BrakeState] = []
        self.pending_brakes_cleared: list[str] = []
        self.rule_overrides: dict[str, str] = {}
        self.tiers: dict[str, Any] = {"month": "", "free": 0, "tiered": 0}
        """This month's requests that carried a tier in the logs, and how many of them were free."""
        """``"rule"`` or ``"rule|endpoint_id"`` → mode, set through the control socket (not persisted)."""
        self.restored_open_workers: dict[str, str] = {}
        self.api_calls: defaultdict[str, int] = defaultdict(int)
        self.action_counts: defaultdict[str, int] = defaultdict(int)
        self.saved_usd: defaultdict[str, float] = defaultdict(float)
        self.events: deque[EventView] = deque(maxlen=MAX_EVENTS)
        self._alert_keys_seen: dict[str, float] = {}
        """Alert key → when this daemon first raised it (see first_sightings)."""
        self.last_budget: Any = None
        self.last_mtd: MonthToDate | None = None
        self.last_retention_at: float | None = None
        self._opened = False

    # -- lifecycle ------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Lock and open the ledger, create the client and the log tailers, restore state from the ledger.

        Raises:
            LedgerError: another instance holds the ledger (or it is unusable).
        """
        from watchdog.client import RunPodClient  # noqa: PLC0415 - httpx client only when running

        config = self.config
        self.ledger = Ledger.open(config.ledger.resolved_path)
        try:
            assert self.secrets.runpod_api_key is not None
            self.client = RunPodClient(
                api_key=self.secrets.runpod_api_key.reveal(),
                graphql_url=config.runpod.graphql_url,
                rest_url=config.runpod.rest_url,
                runtime_url=config.runpod.runtime_url,
                timeout_s=config.runpod.request_timeout_s,
                max_retries=config.runpod.max_retries,
                backoff_max_s=config.runpod.backoff_max_s,
                retry_after_cap_s=config.runpod.retry_after_cap_s,
                transport=self.transport,
                on_call=self._on_call,
            )
            self.executor = Executor(self.client, deny_list_path=config.pings.deny_list_path or None)
            self._open_tailers()
            self._restore()
        except BaseException:
            self.ledger.close()
            raise
        self.dispatcher = AlertDispatcher(
            self.ledger,
            self.secrets.slack_webhook_url,
            clock=SystemClock(),
            min_interval_s=config.slack.min_interval_s,
            retry_max_s=config.slack.retry_max_s,
            max_attempts=config.slack.max_attempts,
        )
        self._opened = True

    async def close(self) -> None:
        for tailer in self.tailers:
            tailer.close()
        if self.client is not None:
            await self.client.aclose()
        if self.ledger is not None:
            self.ledger.close()
        self._opened = False

    async def __aenter__(self) -> Daemon:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _open_tailers(self) -> None:
        for tailer in self.tailers:
            tailer.close()
        self.tailers = [LogTailer(_log_spec(source)) for source in self.config.pings.source]

    def _restore(self) -> None:
        ledger, now = self.ledger, self.clock.now()
        self.accounted_until = ledger.last_accounted_at()
        self.brakes = dict(ledger.brake_states())
        self.brake_rules = _json_meta(ledger.meta(META_BRAKE_RULES), {})
        self.rule_overrides = _json_meta(ledger.meta(META_RULE_OVERRIDES), {})
        self.tiers = _json_meta(ledger.meta(META_TIERS), self.tiers)
        positions = _json_meta(ledger.meta(META_LOG_POSITIONS), {})
        for tailer in self.tailers:
            saved = positions.get(tailer.spec.name)
            if saved:
                tailer.restore(LogPosition(int(saved[0]), int(saved[1]), int(saved[2])))
        latest = ledger.latest_tick()
        sessions = ledger.open_worker_sessions()
        self.restored_open_workers = {s.worker_id: s.endpoint_id for s in sessions}
        quick = (
            latest is not None
            and latest.ok
            and self.accounted_until is not None
            and now - self.accounted_until <= self.stale_after_s
        )
        self.tracker.restore(
            ledger.recent_decisions(500),
            sessions if quick else (),
            now,
            snapshot_at=latest.started_at if quick and latest is not None else None,
        )
        self._restore_requests(now)
        if self.accounted_until is not None:
            gap = now - self.accounted_until
            log.info(
                "resuming the ledger: last accounted %.0f s ago%s",
                gap,
                "" if quick else " (longer than stale_after_s: that gap is left to RunPod's billing)",
            )

    def _restore_requests(self, now: float) -> None:
        """This month's request counts from the ledger's traffic rows: per minute the larger of the log
        count and the /health count (the same rule as TrafficCounter.endpoint_requests)."""

        logs: defaultdict[tuple[str, float], int] = defaultdict(int)
        health: defaultdict[tuple[str, float], int] = defaultdict(int)
        for row in self.ledger.traffic_since(month_start(now)):
            (health if row.source == HEALTH_SOURCE else logs)[(row.endpoint_id, row.minute)] += row.requests
        for key in set(logs) | set(health):
            self.requests_month[key[0]] += max(logs.get(key, 0), health.get(key, 0))

    # -- the tick -------------------------------------------------------------------------------------

    async def tick(self) -> TickOutcome:
        """Run one whole tick under the daemon's lock (commands wait for it, and it for them)."""
        if not self._opened:
            await self.open()
        async with self.lock:
            outcome = await run_tick(self)
        if outcome.blind:
            log.warning("tick %d blind: %s", self.tick_count, outcome.error)
        return outcome

    @property
    def stale_after_s(self) -> float:
        return self.config.policy.stale_after_s

    def new_month(self, now: float) -> None:
        self.month = month_start(now)
        self.requests_month.clear()
        self.tracker.gpu_seconds.clear()
        self.last_billing_at = None

    def limits_for(self, endpoint: EndpointConfig) -> EndpointLimits:
        config = self.config
        effective = config.policy_for(endpoint.id, endpoint.name)
        modes = {}
        for rule in RULES:
            override = self.rule_overrides.get(f"{rule}|{endpoint.id}") or self.rule_overrides.get(rule)
            modes[rule] = override or config.rule_mode(rule, endpoint.id, endpoint.name)
        paused = effective.always_paused
        return EndpointLimits(
            mode=effective.mode,
            max_execution_s=effective.max_execution_s,
            grace_s=effective.grace_s,
            max_idle_timeout_s=effective.max_idle_timeout_s,
            max_workers=0 if paused else effective.max_workers,
            max_workers_min=0 if paused else effective.max_workers_min,
            max_workers_standby=0 if paused else effective.max_workers_standby,
            required_execution_timeout_s=effective.required_execution_timeout_s,
            rule_modes=modes,
            allowed=effective.allow_listed,
            brake_idle_timeout_s=effective.brake_idle_timeout_s,
        )

    def policy_settings(self) -> PolicySettings:
        config = self.config
        return PolicySettings(
            usd_per_eur=config.budget.usd_per_eur,
            stale_after_s=config.policy.stale_after_s,
            max_actions_per_hour=config.policy.max_actions_per_hour,
            cooldown_s=config.policy.cooldown_s,
            alert_thresholds=config.budget.alert_thresholds,
            brake_at=config.budget.brake_at,
            traffic_cut="deny_list" if config.pings.cut == "deny-list" else "cooldown",
            cut_cooldown_s=config.pings.cut_cooldown_s,
            mode=config.policy.mode,
        )

    def absorb(self, decision: Decision, execution: Execution, now: float) -> None:
        """Fold one execution into the daemon's memory (cap, cool-down, cancels, brakes, counters)."""
        tracker = self.tracker
        if execution.attempted:
            tracker.note_action(ActionRecord(now, decision.endpoint_id, decision.rule, decision.action))
        if execution.applied and decision.action == "cancel_job" and decision.endpoint_id and decision.job_id:
            tracker.note_cancel(decision.endpoint_id, decision.job_id, decision.worker_id, now)
        if decision.rule == "budget_brake" and decision.action == "alert":
            threshold = threshold_of(decision.dedupe_key)
            if threshold is not None:
                tracker.alerted_thresholds[month_start(now)].add(threshold)
        if execution.brake_set is not None:
            endpoint_id = execution.brake_set.endpoint_id
            if endpoint_id not in self.brakes:
                self.brake_rules[endpoint_id] = decision.rule
            self.brakes[endpoint_id] = execution.brake_set
        if execution.brake_cleared is not None:
            self.brakes.pop(execution.brake_cleared, None)
            self.brake_rules.pop(execution.brake_cleared, None)
        for row in execution.rows:
            self.count_action(row)

    def count_action(self, row: LedgerDecision) -> None:
        self.action_counts[f"{row.rule}|{row.action}|{row.mode}|{row.outcome}"] += 1
        if row.outcome in ("proposed", "applied") and row.saved_usd:
            self.saved_usd[f"{row.rule}|{row.mode}"] += row.saved_usd

    def first_sightings(self, alerts: list[Alert], now: float) -> list[Alert]:
        """The alerts whose key this daemon has not raised in the last two days."""
        for key in [k for k, at in self._alert_keys_seen.items() if now - at > 2 * 86_400]:
            del self._alert_keys_seen[key]
        fresh = [alert for alert in alerts if alert.key not in self._alert_keys_seen]
        for alert in fresh:
            self._alert_keys_seen[alert.key] = now
        return fresh

    def add_events(self, rows: list[LedgerDecision], alerts: list[Alert], now: float) -> None:
        usd_per_eur = self.config.budget.usd_per_eur
        for row in rows:
            kind = {"proposed": "proposal"}.get(row.outcome, "action")
            if row.rule == "blind":
                kind = "blind"
            elif row.rule == "config_drift":
                kind = "drift"
            elif row.rule == "suspicious_traffic":
                kind = "traffic"
            self.events.appendleft(
                EventView(
                    at=row.at,
                    kind=kind,
                    endpoint_id=row.endpoint_id,
                    text=f"{row.action} ({row.outcome}): {row.reason}",
                    eur=usd_to_eur(row.saved_usd, usd_per_eur) if row.saved_usd else None,
                    state=row.outcome,
                )
            )
        for alert in alerts:
            self.events.appendleft(EventView(now, "alert", None, alert.text, alert.eur, "pending"))

    def ledger_counts(self) -> tuple[int, int]:
        try:
            recent = self.ledger.recent_alerts(1000)
        except LedgerError:
            return 0, 0
        return sum(1 for a in recent if a.state == "sent"), sum(1 for a in recent if a.state != "sent")

    def count_tiers(self, events: Sequence[LogEvent], now: float) -> None:
        """Count this month's requests by tier (logs that carry one), for the measured free share."""
        month = datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m")
        if self.tiers.get("month") != month:
            self.tiers = {"month": month, "free": 0, "tiered": 0}
        for event in events:
            if event.kind == "request" and event.tier:
                self.tiers["tiered"] += 1
                self.tiers["free"] += event.tier.strip().lower() == "free"

    def meta_for_tick(self, status: DaemonStatus) -> dict[str, str]:
        positions = {}
        for tailer in self.tailers:
            position = tailer.position()
            if position is not None:
                positions[tailer.spec.name] = [position.inode, position.offset, position.line_no]
        money = {}
        if self.last_mtd is not None:
            mtd = self.last_mtd
            money = {
                "counted_usd": mtd.counted_usd,
                "estimate_usd": mtd.estimate_usd,
                "billed_usd": mtd.billed_usd,
                "drift_usd": mtd.drift_usd,
                "billed_hours": mtd.billed_hours,
                "last_billed_hour": mtd.last_billed_hour,
            }
        return {
            META_STATUS: status_json(status),
            META_LOG_POSITIONS: json.dumps(positions),
            META_BRAKE_RULES: json.dumps(self.brake_rules, sort_keys=True),
            META_RULE_OVERRIDES: json.dumps(self.rule_overrides, sort_keys=True),
            META_MONEY: json.dumps(money, sort_keys=True),
            META_TIERS: json.dumps(self.tiers, sort_keys=True),
        }

    def _on_call(self, route: str, status: int | None, seconds: float) -> None:
        self.api_calls[f"{route}|{status if status is not None else 'error'}"] += 1

    # -- control commands -----------------------------------------------------------------------------

    async def command(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
        """A control-socket command (pause, restore, cancel_job, set_rule_mode, ack_alert), applied under the
        tick lock, recorded as decisions with rule "manual" and in the ledger's commands table."""
        async with self.lock:
            now = self.clock.now()
            command_id = self.ledger.enqueue_command(kind, args, now)
            try:
                result = await self._command(kind, args, now)
            except (ValueError, KeyError, LookupError) as exc:
                self.ledger.finish_command(command_id, "rejected", {"error": str(exc)}, now)
                raise
            except RunPodError as exc:
                self.ledger.finish_command(command_id, "failed", {"error": str(exc)}, now)
                raise ValueError(f"RunPod refused: {exc}") from exc
            state = "done" if result.get("ok", True) else "failed"
            self.ledger.finish_command(command_id, state, result, self.clock.now())
        if self.dispatcher is not None:
            self.dispatcher.wake()
        return result

    async def _command(self, kind: str, args: dict[str, Any], now: float) -> dict[str, Any]:
        who = str(args.get("by") or "operator")
        if kind == "ack_alert":
            key = str(args["key"])
            self.ledger.acknowledge_alert(key, now)
            return {"ok": True, "acknowledged": key}
        if kind == "set_rule_mode":
            rule, mode = str(args["rule"]), str(args["mode"])
            if rule not in RULES:
                raise ValueError(f"unknown rule {rule!r}; rules are {', '.join(RULES)}")
            if mode not in ("enforce", "dry-run", "inherit"):
                raise ValueError("mode must be enforce, dry-run or inherit")
            endpoint_id = args.get("endpoint_id")
            key = f"{rule}|{endpoint_id}" if endpoint_id else rule
            if mode == "inherit":
                self.rule_overrides.pop(key, None)
            else:
                self.rule_overrides[key] = mode
            row = LedgerDecision(
                at=now,
                rule="manual",
                action="set_rule_mode",
                mode="enforce",
                outcome="applied",
                reason=f"{who} set rule {rule} to {mode}" + (f" on {endpoint_id}" if endpoint_id else ""),
                endpoint_id=str(endpoint_id) if endpoint_id else None,
            )
            self.ledger.record_decisions([row])
            self.count_action(row)
            log.info("%s", row.reason)
            return {"ok": True, "rule": rule, "mode": mode, "overrides": dict(self.rule_overrides)}
        endpoint_id = str(args["endpoint_id"]) if args.get("endpoint_id") else None
        decisions: list[Decision] = []
        if kind == "pause":
            if endpoint_id is None:
                raise ValueError("pause needs an endpoint_id")
            config = await self.client.get_endpoint(endpoint_id)
            brake = self.brakes.get(endpoint_id)
            previous = dict((brake.previous or {}) if brake else {}) or {"workers_max": config.workers_max}
            decisions.append(
                Decision(
                    rule="manual",
                    action="pause",
                    endpoint_id=endpoint_id,
                    mode="enforce",
                    reason=f"paused by {who} from the dashboard",
                    severity="warning",
                    patch={"workers_max": 0},
                    previous=previous,
                    dedupe_key=f"manual:pause:{endpoint_id}:{int(now)}",
                )
            )
        elif kind == "restore":
            brakes = [brake_entry(b, self.brake_rules.get(e)) for e, b in sorted(self.brakes.items())]
            ids = None if endpoint_id is None else [endpoint_id]
            if endpoint_id is not None and endpoint_id not in self.brakes:
                raise ValueError(f"{endpoint_id} is not held by the watchdog")
            for decision in restore_decisions(brakes, now, reason=f"restored by {who}", endpoint_ids=ids):
                decisions.append(
                    dataclasses.replace(
                        decision,
                        rule="manual",
                        dedupe_key=f"manual:restore:{decision.endpoint_id}:{int(now)}",
                    )
                )
        elif kind == "cancel_job":
            job_id = str(args["job_id"])
            if endpoint_id is None:
                raise ValueError("cancel_job needs an endpoint_id")
            decisions.append(
                Decision(
                    rule="manual",
                    action="cancel_job",
                    endpoint_id=endpoint_id,
                    mode="enforce",
                    reason=f"job {job_id} cancelled by {who} from the dashboard",
                    severity="warning",
                    job_id=job_id,
                    dedupe_key=f"manual:cancel_job:{endpoint_id}:{job_id}",
                )
            )
        else:
            raise ValueError(f"unknown command {kind!r}")
        rows: list[LedgerDecision] = []
        outcomes = []
        for decision in decisions:
            execution = await self.executor.execute(decision, now, brakes=self.brakes)
            self.absorb(decision, execution, now)
            if execution.brake_set is not None:
                self.pending_brakes_set.append(execution.brake_set)
            if execution.brake_cleared is not None:
                self.pending_brakes_cleared.append(execution.brake_cleared)
            rows.extend(execution.rows)
            outcome = execution.rows[-1] if execution.rows else None
            outcomes.append(
                {
                    "endpoint_id": decision.endpoint_id,
                    "action": decision.action,
                    "outcome": outcome.outcome if outcome else "skipped",
                    "error": outcome.error if outcome else None,
                }
            )
        self.ledger.record_decisions(rows)
        for row in rows:
            text = f"{row.action} on {row.endpoint_id} by {who}: {row.outcome}" + (
                f" ({row.error})" if row.error else ""
            )
            self.ledger.enqueue_alert(f"manual:{row.dedupe_key}", "action", "info", text, None, now)
        self.add_events(rows, [], now)
        return {"ok": all(o["outcome"] == "applied" for o in outcomes), "results": outcomes}

    # -- reload -----------------------------------------------------------------------------------------

    async def reload(self, path: str | None) -> bool:
        """SIGHUP: re-read the config. On error keep the old one, log every problem, queue an alert."""
        try:
            new = load_config(path)
        except ConfigError as error:
            for problem in error.problems:
                log.error("config reload: %s", problem)
            now = self.clock.now()
            text = (
                ":warning: The watchdog could not reload its configuration and keeps the previous one: "
                + "; ".join(error.problems[:5])
            )
            self.ledger.enqueue_alert(f"config-reload:{int(now)}", "config", "warning", text, None, now)
            if self.dispatcher is not None:
                self.dispatcher.wake()
            return False
        async with self.lock:
            if new.ledger.resolved_path != self.config.ledger.resolved_path:
                log.warning(
                    "config reload: ledger.path changes only on restart; keeping %s", self.ledger.path
                )
                new = dataclasses.replace(new, ledger=self.config.ledger)
            old_sources = self.config.pings.source
            self.config = new
            self.executor.deny_list_path = new.pings.deny_list_path or None
            if new.pings.source != old_sources:
                self._open_tailers()
        log.info("configuration reloaded: %s", new.summary())
        return True

    # -- the loop ---------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, config_path: str | None = None) -> int:
        """Tick until ``stop`` is set. A tick in progress always completes. Returns the exit code."""
        if not self._opened:
            await self.open()
        background: list[asyncio.Task[Any]] = []
        assert self.dispatcher is not None
        background.append(asyncio.create_task(self.dispatcher.run_forever(stop), name="alerts"))
        interval = self.notifier.watchdog_interval_s
        if interval:
            background.append(asyncio.create_task(self._watchdog_pings(stop, interval), name="sd-watchdog"))
        interval_s = self.config.runpod.poll_interval_s
        ready = False
        try:
            while not stop.is_set():
                started = self.clock.now()
                try:
                    outcome = await asyncio.shield(self.tick())
                except RunPodAuthError:
                    raise
                except Exception:
                    log.exception("tick failed")
                    outcome = None
                if outcome is not None and outcome.status is not None:
                    line = status_line(outcome.status, self.tick_count, len(outcome.actions))
                    if not ready:
                        self.notifier.ready(line)
                        ready = True
                        log.info("ready: %s", line)
                    else:
                        self.notifier.status(line)
                self._maybe_retention()
                interval_s = self.config.runpod.poll_interval_s
                # Intervals are in the clock's seconds; a ScaledClock (the demo) runs `speed` times faster.
                speed = float(getattr(self.clock, "speed", 1.0))
                wait = max(0.0, interval_s - (self.clock.now() - started)) / speed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
        finally:
            self.notifier.stopping("stopping: finishing the tick in flight and flushing the ledger")
            stop.set()
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        return 0

    async def _watchdog_pings(self, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            self.notifier.watchdog()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    def _maybe_retention(self) -> None:
        now = self.clock.now()
        if self.last_retention_at is not None and now - self.last_retention_at < RETENTION_EVERY_S:
            return
        self.last_retention_at = now
        try:
            result = self.ledger.apply_retention(
                now, self.config.ledger.raw_retention_days, self.config.ledger.rollup_retention_days
            )
            log.debug("retention: %s", result)
        except LedgerError as exc:
            log.error("ledger retention failed: %s", exc)


def _json_meta(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return default


# ------------------------------------------------------------------------------------------------------------
# The command


def run_command(config_path: str | None) -> int:
    """``runpod-watchdog run [--config PATH]``: 0 after SIGTERM, 2 on bad config/key/second instance."""
    redactor = setup_logging("INFO", SecretRedactor())
    try:
        config = load_config(config_path)
        secrets = load_secrets()
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    for secret in (secrets.runpod_api_key, secrets.slack_webhook_url):
        if secret is not None:
            redactor.add(secret.reveal())
    try:
        return asyncio.run(_main(config, secrets, config_path))
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 2
    except KeyboardInterrupt:
        return 0


async def _main(config: Config, secrets: Secrets, config_path: str | None) -> int:
    from watchdog.control import ControlServer  # noqa: PLC0415 - the servers load only for `run`
    from watchdog.metrics import build_registry, serve_metrics  # noqa: PLC0415

    try:
        daemon = Daemon(config, secrets)
        await daemon.open()
    except LedgerError as exc:
        raise StartupError(str(exc)) from None
    log.info("starting: %s", config.summary())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[Any]] = set()

    def on_hup() -> None:
        task = asyncio.ensure_future(daemon.reload(config_path))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    metrics_server = None
    control = None
    try:
        if config.metrics.enabled:
            try:
                registry = build_registry(daemon.status_ref)
                metrics_server, _thread = serve_metrics(
                    registry,
                    config.metrics.listen,
                    certfile=config.metrics.tls_cert_file or None,
                    keyfile=config.metrics.tls_key_file or None,
                )
            except OSError as exc:
                log.error("metrics endpoint %s not started: %s", config.metrics.listen, exc)
        control = ControlServer(
            config.control.resolved_socket_path,
            daemon.status_ref,
            daemon.command,
            mode=config.control.socket_mode_bits,
        )
        try:
            await control.start()
        except OSError as exc:
            log.error("control socket %s not started: %s", config.control.resolved_socket_path, exc)
            control = None
        try:
            await daemon.run(stop, config_path=config_path)
        except RunPodAuthError as exc:
            raise StartupError(
                f"RunPod rejected the API key ({exc}); check RUNPOD_API_KEY or the systemd credential"
            ) from None
    finally:
        if control is not None:
            await control.close()
        if metrics_server is not None:
            metrics_server.shutdown()
        for task in list(reloads):
            with contextlib.suppress(Exception):
                await task
        await daemon.close()
        log.info("stopped")
    return 0
