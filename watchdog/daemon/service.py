"""The daemon as a service: open and close its resources, run ticks until told to stop, reload its
configuration, answer the control socket, talk to systemd.

:class:`Daemon` is the I/O shell around :func:`~watchdog.daemon.tick.run_tick` and
:func:`~watchdog.daemon.commands.run_command`: it owns the :class:`~watchdog.daemon.state.DaemonState`,
the :class:`~watchdog.daemon.ports.Ports` and a lock, so a command never runs inside a tick. :func:`serve`
is ``runpod-watchdog run``'s body: the daemon plus the alert dispatcher, the control socket, the Prometheus
exporter, the signal handlers (SIGTERM/SIGINT stop after the tick in flight, SIGHUP reloads) and
sd_notify (READY once the first tick is done, STATUS each tick, WATCHDOG at half ``WATCHDOG_USEC``).

Driving the daemon in tests (no subprocess, no sockets, no real time)::

    clock = ManualClock(start)
    sim = build_simulator("hung-job", clock=clock, access_log_path=str(tmp_path / "access.log"))
    daemon = Daemon(config, secrets, clock=clock, transport=httpx.ASGITransport(create_app(sim)))
    await daemon.open()            # ledger lock, client, state restored from the ledger
    outcome = await daemon.tick()  # one whole tick; returns a TickOutcome
    clock.advance(5)
    ...
    await daemon.close()

``sim_harness.wiring.daemon_against(sim, tmp_path, **overrides)`` builds exactly that. Nothing else in
``watchdog.daemon`` imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from typing import Any

import httpx

from watchdog.alerts import AlertDispatcher
from watchdog.client import RunPodClient
from watchdog.clock import Clock, SystemClock
from watchdog.config import Config, LogSource, Secrets, dry_run_everywhere, load_config
from watchdog.daemon.commands import run_command
from watchdog.daemon.fetch import ReadInterrupted
from watchdog.daemon.notices import reload_failed_alert
from watchdog.daemon.ports import Ports
from watchdog.daemon.publish import status_line
from watchdog.daemon.state import Accounting, DaemonState, restore_state
from watchdog.daemon.tick import DeadlineOutcome, TickOutcome, check_deadlines, failed_tick, run_tick
from watchdog.errors import ConfigError, LedgerError, RunPodAuthError
from watchdog.ledger import STATUS_META_KEY, Ledger
from watchdog.logwatch import LogTailer
from watchdog.sdnotify import SystemdNotifier
from watchdog.status import StatusRef, status_json
from watchdog.traffic import DenyList

log = logging.getLogger("watchdog.daemon")

RETENTION_EVERY_S = 3600.0
CLOCK_STEP_TOLERANCE_S = 2.0
"""A wall clock that moved this much more (or less) than elapsed time between two ticks was stepped."""


class StartupError(Exception):
    """The daemon cannot start (bad key, ledger held by another instance...); exit code 2."""


class Daemon:
    """The watchdog: its state, its ports, and the lock that keeps ticks and commands apart.

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
        self.state = DaemonState.fresh(self.clock.now())
        self.lock = asyncio.Lock()
        self._ports: Ports | None = None
        self.dispatcher: AlertDispatcher | None = None
        self._last_retention_at: float | None = None
        self._deadlines_changed = asyncio.Event()
        self._clock_reading: tuple[float, float] | None = None
        """(wall, monotonic) at the last tick: a wall-clock step shows as a difference between them."""

    @property
    def ports(self) -> Ports:
        if self._ports is None:
            raise RuntimeError("the daemon is not open")
        return self._ports

    @property
    def ledger(self) -> Ledger:
        return self.ports.ledger

    # -- lifecycle ------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Lock and open the ledger, create the client and the log tailers, restore the state.

        Raises:
            LedgerError: another instance holds the ledger (or it is unusable).
        """
        config = self.config
        ledger = Ledger.open(config.ledger.resolved_path)
        try:
            assert self.secrets.runpod_api_key is not None
            client = RunPodClient.from_config(
                config.runpod,
                self.secrets.runpod_api_key,
                transport=self.transport,
                on_call=self._count_call,
            )
            tailers = _tailers(config)
            self.state = restore_state(
                ledger, tailers, now=self.clock.now(), stale_after_s=config.policy.stale_after_s
            )
        except BaseException:
            ledger.close()
            raise
        self.dispatcher = AlertDispatcher(
            ledger,
            self.secrets.slack_webhook_url,
            clock=SystemClock(),
            min_interval_s=config.slack.min_interval_s,
            retry_max_s=config.slack.retry_max_s,
            max_attempts=config.slack.max_attempts,
        )
        self._ports = Ports(
            client=client,
            ledger=ledger,
            clock=self.clock,
            tailers=tailers,
            status=self.status_ref,
            deny_list=_deny_list(config),
            wake_alerts=self.dispatcher.wake,
            alert_without_ledger=self.dispatcher.raise_without_ledger,
            delivery=self.dispatcher.health,
        )

    async def close(self) -> None:
        ports, self._ports = self._ports, None
        if ports is None:
            return
        status = ports.status.get()
        if status is not None:  # the last status, for the dashboard while the daemon is down
            with contextlib.suppress(LedgerError):
                ports.ledger.write_meta({STATUS_META_KEY: status_json(status)})
        for tailer in ports.tailers:
            tailer.close()
        await ports.client.aclose()  # type: ignore[attr-defined]
        ports.ledger.close()

    async def __aenter__(self) -> Daemon:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_ledger_file(self, now: float) -> None:
        """A ledger deleted or replaced under the daemon is noticed before the tick writes into it (SQLite
        would write into the unlinked file, lost at exit), alerted, and reopened at its path."""
        ports = self.ports
        try:
            ports.ledger.check_file()
        except LedgerError as exc:
            problem = str(exc)
        else:
            return
        try:
            ports.ledger.reopen()
        except LedgerError as exc:
            text = f"{problem}; reopening it failed ({exc}): the watchdog guards from memory"
            log.error("%s", text)
            self.state.ledger.since = self.state.ledger.since or now
            self.state.ledger.problem = text[:300]
            ports.alert_without_ledger(f"ledger-lost:{int(now)}", f":floppy_disk: {text}")
            return
        self.state.accounting = Accounting(accounted_until=ports.ledger.last_accounted_at())
        text = (
            f"{problem}: the watchdog reopened {ports.ledger.path} and records there from now on; what "
            "the old file held (earlier ticks, decisions, this month's estimate) is only in RunPod's billing"
        )
        log.error("%s", text)
        ports.alert_without_ledger(f"ledger-replaced:{int(now)}", f":floppy_disk: {text}")

    def _wall_clock_step(self, now: float) -> float | None:
        """How far the wall clock jumped since the last tick beyond the time that really passed (None: it
        did not, within ``CLOCK_STEP_TOLERANCE_S``; NTP slews are far smaller)."""
        elapsed = self.clock.monotonic()
        previous, self._clock_reading = self._clock_reading, (now, elapsed)
        if previous is None:
            return None
        step = (now - previous[0]) - (elapsed - previous[1])
        return step if abs(step) > CLOCK_STEP_TOLERANCE_S else None

    def _count_call(self, route: str, status: int | None, seconds: float) -> None:
        self.state.counters.api_calls[f"{route}|{status if status is not None else 'error'}"] += 1

    # -- ticks and commands ---------------------------------------------------------------------------

    async def tick(self) -> TickOutcome:
        """Run one whole tick under the daemon's lock (commands wait for it, and it for them)."""
        if self._ports is None:
            await self.open()
        async with self.lock:
            now = self.clock.now()
            step = self._wall_clock_step(now)
            if step is not None:
                self.state.shift_times(step)
                log.warning("the system clock jumped by %+.0f s: this tick takes no action", step)
                return failed_tick(
                    self.state, self.ports, self.config, now, f"the system clock jumped by {step:+.0f} s"
                )
            self._check_ledger_file(now)
            try:
                return await run_tick(self.state, self.ports, self.config, now)
            except (RunPodAuthError, ReadInterrupted):
                raise
            except Exception as exc:  # any failure is a blind tick, published and alerted, never silent
                log.exception("tick failed")
                return failed_tick(self.state, self.ports, self.config, now, f"{type(exc).__name__}: {exc}")

    async def check_deadlines(self) -> DeadlineOutcome:
        """Act on the runaway deadlines that are due (see :func:`~watchdog.daemon.tick.check_deadlines`):
        without the tick lock, so a slow tick does not delay a due cancel."""
        return await check_deadlines(self.state, self.ports, self.config, self.clock.now())

    async def command(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
        """A control-socket command, applied under the tick lock and recorded in one transaction."""
        async with self.lock, self.ports.acting:
            ports = self.ports
            answer = await run_command(
                kind,
                args,
                state=self.state,
                client=ports.client,
                ledger=ports.ledger,
                tailers=ports.tailers,
                deny_list=ports.deny_list,
                config=self.config,
                now=self.clock.now(),
            )
        ports.wake_alerts()
        return answer

    # -- reload ---------------------------------------------------------------------------------------

    async def reload(self, path: str | None) -> bool:
        """SIGHUP: re-read the config. On error keep the old one, log every problem, queue an alert. A
        daemon started with ``run --dry-run`` stays dry-run whatever the file now says."""
        try:
            new = load_config(path)
            if self.config.policy.dry_run_only:
                new = dry_run_everywhere(new)
        except ConfigError as error:
            for problem in error.problems:
                log.error("config reload: %s", problem)
            alert = reload_failed_alert(error.problems, self.clock.now())
            self.ledger.enqueue_alert(
                alert.key, alert.kind, alert.severity, alert.text, None, self.clock.now()
            )
            self.ports.wake_alerts()
            return False
        async with self.lock:
            ports = self.ports
            if new.ledger.resolved_path != self.config.ledger.resolved_path:
                log.warning(
                    "config reload: ledger.path changes only on restart; keeping %s", ports.ledger.path
                )
                new = dataclasses.replace(new, ledger=self.config.ledger)
            if new.pings.source != self.config.pings.source:
                # Unchanged sources keep their tailer (and its position); new ones are opened before any old
                # one is closed, so a source that cannot be opened leaves the running set as it was.
                kept: dict[LogSource, LogTailer] = {tailer.spec: tailer for tailer in ports.tailers}
                try:
                    opened = {s: LogTailer(s) for s in new.pings.source if s not in kept}
                except ConfigError as exc:
                    log.error("config reload: keeping the previous log sources: %s", exc)
                    new = dataclasses.replace(
                        new, pings=dataclasses.replace(new.pings, source=self.config.pings.source)
                    )
                else:
                    tailers = [kept.pop(s) if s in kept else opened[s] for s in new.pings.source]
                    for tailer in kept.values():
                        tailer.close()
                    ports.tailers = tailers
            ports.deny_list = _deny_list(new)
            self.config = new
        log.info("configuration reloaded: %s", new.summary())
        return True

    # -- the loop -------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        """Tick until ``stop`` is set. A tick in progress always completes. Returns the exit code."""
        if self._ports is None:
            await self.open()
        assert self.dispatcher is not None
        background = [
            asyncio.create_task(self.dispatcher.run_forever(stop), name="alerts"),
            asyncio.create_task(self._watch_deadlines(stop), name="deadlines"),
            asyncio.create_task(self._relay_stop(stop), name="stop-reads"),
        ]
        interval = self.notifier.watchdog_interval_s
        if interval:
            background.append(asyncio.create_task(self._watchdog_pings(stop, interval), name="sd-watchdog"))
        ready = False
        try:
            while not stop.is_set():
                started = self.clock.now()
                try:
                    outcome: TickOutcome | None = await asyncio.shield(self.tick())
                except ReadInterrupted:
                    log.info("stopping: the tick's read of RunPod was abandoned; nothing of it was recorded")
                    break
                except RunPodAuthError:
                    raise
                except Exception:
                    log.exception("tick failed")
                    outcome = None
                self._deadlines_changed.set()
                if outcome is not None and outcome.status is not None:
                    line = status_line(outcome.status, self.state.ticks, len(outcome.actions))
                    if not ready:
                        self.notifier.ready(line)
                        ready = True
                        log.info("ready: %s", line)
                    else:
                        self.notifier.status(line)
                self._maybe_retention()
                # Intervals are in the clock's seconds; a ScaledClock (the demo) runs `speed` times faster.
                speed = float(getattr(self.clock, "speed", 1.0))
                wait = max(0.0, self.config.runpod.poll_interval_s - (self.clock.now() - started)) / speed
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

    async def _relay_stop(self, stop: asyncio.Event) -> None:
        """Tell a tick reading RunPod to give up as soon as the daemon is told to stop (a read waiting out
        a long ``Retry-After`` would otherwise hold SIGTERM past systemd's TimeoutStopSec)."""
        await stop.wait()
        self.ports.stopping.set()

    async def _watch_deadlines(self, stop: asyncio.Event) -> None:
        """Sleep until the earliest runaway deadline (or until a tick changes them), then check it: the
        cancel goes out at the deadline, whatever the tick interval."""
        speed = float(getattr(self.clock, "speed", 1.0))
        while not stop.is_set():
            self._deadlines_changed.clear()
            deadlines = self.state.deadlines
            wait = self.config.runpod.poll_interval_s
            if deadlines:
                wait = min(wait, max(0.0, deadlines[0].at - self.clock.now()))
            changed = asyncio.ensure_future(self._deadlines_changed.wait())
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait(
                    {changed, stopped}, timeout=wait / speed, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in (changed, stopped):
                    waiter.cancel()
            if stop.is_set():
                return
            if self.state.deadlines and self.state.deadlines[0].at <= self.clock.now():
                try:
                    await self.check_deadlines()
                except Exception:  # a bug here must not stop the watch; the next tick still judges
                    log.exception("deadline check failed")

    async def _watchdog_pings(self, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            self.notifier.watchdog()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    def _maybe_retention(self) -> None:
        now = self.clock.now()
        if self._last_retention_at is not None and now - self._last_retention_at < RETENTION_EVERY_S:
            return
        self._last_retention_at = now
        try:
            result = self.ledger.apply_retention(
                now, self.config.ledger.raw_retention_days, self.config.ledger.rollup_retention_days
            )
            log.debug("retention: %s", result)
        except LedgerError as exc:
            log.error("ledger retention failed: %s", exc)


def _tailers(config: Config) -> list[LogTailer]:
    return [LogTailer(source) for source in config.pings.source]


def _deny_list(config: Config) -> DenyList | None:
    return DenyList(config.pings.deny_list_path) if config.pings.deny_list_path else None


async def serve(config: Config, secrets: Secrets, config_path: str | None) -> int:
    """``runpod-watchdog run``: the daemon with its dispatcher, control socket, exporter and signals until
    SIGTERM/SIGINT (exit 0).

    Raises:
        StartupError: the ledger is held by another instance or unusable, or RunPod rejected the key.
    """
    from watchdog.control import ControlServer  # noqa: PLC0415 - the servers load only for `run`
    from watchdog.metrics import start_exporter  # noqa: PLC0415

    # The signals are ours before anything slow starts: a SIGTERM while the ledger opens is a clean stop
    # (exit 0), not a death by signal; a SIGHUP then is ignored (the config was just read).
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP during start-up: ignored"))
    try:
        daemon = Daemon(config, secrets)
        await daemon.open()
    except LedgerError as exc:
        raise StartupError(str(exc)) from None
    if stop.is_set():
        log.info("stopped during start-up")
        await daemon.close()
        return 0
    log.info("starting: %s", config.summary())
    reloads: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        task = asyncio.ensure_future(daemon.reload(config_path))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    metrics_server = None
    control: ControlServer | None = None
    try:
        if config.metrics.enabled:
            try:
                metrics_server = start_exporter(
                    daemon.status_ref,
                    config.metrics.listen,
                    certfile=config.metrics.tls_cert_file or None,
                    keyfile=config.metrics.tls_key_file or None,
                    clock=daemon.clock.now,
                )
            except OSError as exc:  # a port in use: say so and exit 2, not run a daemon nobody can scrape
                raise StartupError(
                    f"the metrics endpoint cannot listen on {config.metrics.listen}: {exc.strerror or exc} "
                    "(another process has the port? set [metrics] listen, or enabled = false)"
                ) from None
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
            await daemon.run(stop)
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


__all__ = ["Daemon", "StartupError", "serve"]
