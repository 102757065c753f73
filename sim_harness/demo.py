"""``runpod-watchdog demo``: the product's story in about a minute, on a simulated account, with no API key.

What runs, all in ONE process and ONE asyncio event loop (no thread, no child process):

- the RunPod simulator with the story of :mod:`runpod_sim.story` (day 24, about 76 % of the 20 EUR
  budget, a lunchtime batch landing on the lagging bill, then a hung job on an endpoint with no execution
  timeout, then a keep-warm bot),
  served by uvicorn on ``127.0.0.1`` (a free port) as a task, its access log in a temporary directory;
- the daemon (:meth:`watchdog.daemon.service.Daemon.run`) as a task, in enforce mode, against that URL with
  the simulator's published local key, its ledger and control socket in the temporary directory, the access
  log as its ``[[pings.source]]``, metrics off, limits short enough for the story to fit;
- the :class:`StoryDriver` task: after each tick it reads the daemon's new decisions from the ledger, turns
  the story's beats into one line each, and plays the next act right after the tick that closed the
  previous one (so the beats come in order: 80 % alert, hung job caught and its worker stopped, execution
  timeout patched, keep-warm flood flagged);
- the dashboard (:func:`tui.app.make_app` over the daemon's control socket, ``App.run_async``), or with
  ``--headless`` the story as text lines on stdout.

Simulator and daemon share one :class:`~watchdog.clock.ScaledClock` (45 simulated seconds per real second);
the daemon's poll interval and limits are simulated seconds.

Stopping (q, Ctrl-C, SIGTERM, or the end of the headless story): the driver stops, the daemon finishes its
tick in flight and closes its ledger, the control socket and the simulator's listening socket are closed,
and the temporary directory is removed. Exit codes: 0 after a clean stop (headless: the whole story was
told, or the ``--duration`` the user chose ran out, or it was interrupted); 1 when the default headless
duration ran out before every beat happened, or the daemon failed (the tail of the demo's log, which
otherwise lives and dies in the temporary directory, is printed to stderr); 2 for a bad ``--duration``, or
for the dashboard without a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

import uvicorn
from textual.binding import Binding, BindingType

from runpod_sim import story
from runpod_sim.app import RateLimits, create_app
from runpod_sim.engine import Simulator
from runpod_sim.scenarios import FLOOD_ENDPOINT_ID, HUNG_ENDPOINT_ID
from sim_harness.wiring import GENEROUS_RUNTIME_LIMITS, sim_config, sim_secrets
from tui.app import WatchdogApp, is_terminal
from tui.source import ControlActions, DaemonSource
from watchdog.config import Config
from watchdog.control import ControlServer
from watchdog.daemon.service import Daemon
from watchdog.ledger import DecisionRow
from watchdog.status import DaemonStatus
from watchdog.vocabulary import BILLED_BY_DEFAULT

log = logging.getLogger("sim_harness.demo")

DEFAULT_DURATION_S = 90.0
"""Headless: real seconds before giving up (the story takes about 40 s; it stops as soon as it is told)."""
POLL_INTERVAL_S = 90.0
"""Simulated seconds between ticks: 2 real seconds at speed 45. Longer than the runaway limit plus the hung
endpoint's cold start, so the daemon first meets the hung job once it is past its limit (see story.py)."""
ACT_PAUSE_TICKS = 3
"""Ticks between a beat and the next act (6 real seconds at speed 45), so a newcomer can read each one.
Counted in ticks, not in real seconds: every run plays each act at the same simulated moment."""
SLOW_MOTION_SPEED = 7.5
"""Simulated seconds per real second from the hung job's start to the tick that catches it (instead of
45): its 90 simulated seconds last 12 real seconds, 6 of them with the job running past its limit."""
MAX_EXECUTION_S = 30.0
GRACE_S = 10.0
REQUIRED_TIMEOUT_S = 600
KEEP_WARM_WINDOW_MIN = 2.0
DRIVER_POLL_S = 0.05
NOTIFY_S = 15.0
"""Seconds a story notification stays on the dashboard."""
STOP_TIMEOUT_S = 10.0

BUDGET_80 = "budget_80"
HUNG_JOB_CAUGHT = "hung_job_caught"
WORKER_STOPPED = "worker_stopped"
TIMEOUT_PATCHED = "timeout_patched"
FLOOD_FLAGGED = "flood_flagged"
BEATS: tuple[str, ...] = (BUDGET_80, HUNG_JOB_CAUGHT, WORKER_STOPPED, TIMEOUT_PATCHED, FLOOD_FLAGGED)
"""The story's beats, in the order a newcomer sees them."""
BEAT_TITLES = {
    BUDGET_80: "Budget 80 % reached",
    HUNG_JOB_CAUGHT: "Hung job caught",
    WORKER_STOPPED: "Worker stopped",
    TIMEOUT_PATCHED: "Timeout patched",
    FLOOD_FLAGGED: "Flood flagged",
}
"""Notification titles on the dashboard: one short line each, so a screen reader (or a test) finds them."""


def demo_config(tmp: Path, base_url: str, access_log: Path) -> Config:
    """The daemon's configuration for the story: enforce mode, short limits, everything in ``tmp``."""
    return sim_config(
        tmp,
        log_path=access_log,
        runpod={
            "graphql_url": f"{base_url}/graphql",
            "rest_url": f"{base_url}/v2",
            "runtime_url": f"{base_url}/v2",
            "poll_interval_s": POLL_INTERVAL_S,
            "billing_interval_s": POLL_INTERVAL_S,
            "max_retries": 1,
        },
        budget={"monthly_eur": story.BUDGET_EUR, "usd_per_eur": story.USD_PER_EUR},
        policy={
            "mode": "enforce",
            "max_execution_s": MAX_EXECUTION_S,
            "grace_s": GRACE_S,
            "required_execution_timeout_s": REQUIRED_TIMEOUT_S,
            "stale_after_s": 10 * POLL_INTERVAL_S,
        },
        pings={"keep_warm_window_min": KEEP_WARM_WINDOW_MIN, "cut": "alert"},
    )


def sim_time(ts: float) -> str:
    """``day 24 14:05`` (UTC), the story's way of telling simulated time."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return f"day {moment.day} {moment:%H:%M}"


def _eur(value: float) -> str:
    return f"{value:.2f} €"


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.0f} %"


class TickClock:
    """The clock simulator and daemon share: simulated time that moves in steps, one per tick.

    Why steps: with a clock that runs on during a tick, what the daemon reads (and when a deadline fires,
    and when the story's acts land) depends on how many milliseconds each HTTP call took, so two runs of
    the story told different stories (one caught a keep-warm worker idle and scaled it to zero, the next
    did not). Here tick ``k`` happens at exactly ``start + k × poll_interval``: :meth:`now` (what the
    simulator and the daemon read) stands at that instant for the whole tick and until the next one, so
    every read, decision and act is a function of the tick's number, never of the machine's speed.

    Between two ticks :meth:`display_now` (what the dashboard shows) runs smoothly at :attr:`rate`
    simulated seconds per real second up to the next tick's instant, and the next tick starts when it gets
    there: the pace a person sees is ``speed`` (or the story's slow motion), as with a ScaledClock."""

    def __init__(self, start: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        """The base pace (the daemon divides its waits by it)."""
        self.start = start
        self.rate = speed
        """The pace until the next tick: ``speed``, or slower during the story's slow motion."""
        self._held = start
        self._gate = start
        self._anchor_sim = start
        self._anchor_real = time.monotonic()

    # -- the Clock protocol (simulator and daemon) ------------------------------------------------------

    def now(self) -> float:
        return self._held

    def monotonic(self) -> float:
        return self._held - self.start

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    # -- the pace ------------------------------------------------------------------------------------------

    def display_now(self) -> float:
        """Simulated time as a person sees it: smooth, never past the next tick's instant."""
        return min(self._gate, self._anchor_sim + (time.monotonic() - self._anchor_real) * self.rate)

    def real_at(self, at: float) -> float:
        """The ``time.monotonic()`` at which :meth:`display_now` reaches ``at`` (within the current step)."""
        return self._anchor_real + (at - self._anchor_sim) / self.rate

    def real_until(self, at: float) -> float:
        """Real seconds until :meth:`display_now` reaches ``at``."""
        return max(0.0, self.real_at(at) - time.monotonic())

    def hold(self, at: float) -> None:
        """A tick at ``at``: simulated time stands there (and the display waits there) until :meth:`step`."""
        if at < self._held:
            raise ValueError("time does not go backwards")
        self._held = self._gate = at

    def step(self, until: float, *, rate: float, since_real: float) -> None:
        """After the tick held at :meth:`now`: the display runs from there (as of the real moment
        ``since_real``, when the tick began) at ``rate`` up to ``until``, the next tick's instant."""
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self._anchor_sim, self._anchor_real, self.rate, self._gate = self._held, since_real, rate, until


class StoryHooks(Protocol):
    def after_tick(self, index: int, status: DaemonStatus | None) -> float:
        """Called right after tick ``index`` (simulated time still held at it): tell its beats, play the
        acts due, and return the pace (simulated seconds per real second) until the next tick."""
        ...


class DemoDaemon(Daemon):
    """The daemon on the demo's :class:`TickClock`, ticking at ``start + k × poll_interval`` exactly.

    - It brings the in-process simulator up to date before each tick. Why: the simulator advances its model
      (and writes its access log) only when asked something; under ``simulate`` a background task syncs
      it; here the daemon's first read of a tick is the access log, so a sync just before it gives the log
      tailer what happened up to the tick, as a real gateway's log would.
    - After each tick it calls the story (:class:`StoryHooks`) synchronously, before the clock moves on:
      the story sees every tick, and its acts land at the tick's instant.
    - The runaway rule acts at ticks only: the between-ticks deadline watch would cancel at a moment set by
      the event loop's timers, racing the tick (the daemon's own tests cover it)."""

    def __init__(self, *args: Any, sim: Simulator, clock: TickClock, **kwargs: Any) -> None:
        super().__init__(*args, clock=clock, **kwargs)
        self.sim = sim
        self.tick_clock = clock
        self.story: StoryHooks | None = None
        self.ticks_done = 0
        self.tick_began = time.monotonic()
        """``time.monotonic()`` when the current (or last) tick began."""
        self._stop: asyncio.Event | None = None

    def tick_at(self, index: int) -> float:
        return self.tick_clock.start + index * self.config.runpod.poll_interval_s

    async def run(self, stop: asyncio.Event) -> int:
        self._stop = stop
        return await super().run(stop)

    async def _watch_deadlines(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def tick(self) -> Any:
        index = self.ticks_done
        at = self.tick_at(index)
        wait = self.tick_clock.real_until(at)
        if wait > 0 and self._stop is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=wait)
        began = self.tick_began = time.monotonic()
        self.tick_clock.hold(at)
        rate = self.tick_clock.speed
        try:
            self.sim.sync()
            outcome = await super().tick()
            if self.story is not None:
                rate = self.story.after_tick(index, self.status_ref.get())
        finally:
            self.ticks_done = index + 1
            self.tick_clock.step(self.tick_at(index + 1), rate=rate, since_real=began)
        return outcome


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the demo decides when the simulator stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


# ------------------------------------------------------------------------------------------------------------
# Everything the story needs, started and stopped together
# ------------------------------------------------------------------------------------------------------------


class DemoStack:
    """Simulator (uvicorn task) + daemon (task) + control socket, in a temporary directory.

    ``async with DemoStack() as stack:`` starts them; leaving the block stops all of them and removes the
    directory, whatever happened inside."""

    def __init__(self, *, speed: float = story.SPEED, seed: int = 0) -> None:
        self.speed = speed
        self.seed = seed
        self.tmp = Path(tempfile.mkdtemp(prefix="rpwd-demo-"))
        self.access_log = self.tmp / "access.log"
        self.log_path = self.tmp / "demo.log"
        self.clock = TickClock(story.story_start(time.time()), speed)
        self.sim: Simulator | None = None
        self.server: _Server | None = None
        self.server_task: asyncio.Task[None] | None = None
        self.base_url = ""
        self.port = 0
        self.config: Config | None = None
        self.daemon: DemoDaemon | None = None
        self.control: ControlServer | None = None
        self.stop = asyncio.Event()
        self.daemon_task: asyncio.Task[int] | None = None
        self._log_handler: logging.Handler | None = None
        self._root_level = logging.getLogger().level

    # -- lifecycle --------------------------------------------------------------------------------------

    async def __aenter__(self) -> DemoStack:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._capture_logs()
        sim = story.build_story(
            clock=self.clock, seed=self.seed, access_log_path=str(self.access_log), scheduled=False
        )
        self.sim = sim
        app = create_app(
            sim,
            rate_limits=RateLimits(
                runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=1_000_000
            ),
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            lifespan="off",
            log_config=None,
        )
        self.server = _Server(config)
        self.server_task = asyncio.create_task(self.server.serve(), name="demo-simulator")
        while not self.server.started:
            if self.server_task.done():
                await self.server_task
                raise RuntimeError("the simulator could not start on 127.0.0.1")
            await asyncio.sleep(0.01)
        self.port = next(sock.getsockname()[1] for srv in self.server.servers for sock in srv.sockets)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config = demo_config(self.tmp, self.base_url, self.access_log)
        self.daemon = DemoDaemon(self.config, sim_secrets(), clock=self.clock, sim=sim)
        await self.daemon.open()
        self.control = ControlServer(
            self.config.control.resolved_socket_path,
            self.daemon.status_ref,
            self.daemon.command,
            mode=0o600,
        )
        await self.control.start()
        log.info("demo started: simulator %s, files in %s", self.base_url, self.tmp)

    def run_daemon(self, story_hooks: StoryHooks | None) -> None:
        """Start ticking, the story attached first (it must see tick 0)."""
        assert self.daemon is not None
        self.daemon.story = story_hooks
        self.daemon_task = asyncio.create_task(self.daemon.run(self.stop), name="demo-daemon")

    async def close(self) -> None:
        """Stop in dependency order; every step runs even if an earlier one failed."""
        self.stop.set()
        if self.daemon_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.daemon_task), STOP_TIMEOUT_S)
            except (TimeoutError, asyncio.CancelledError):
                self.daemon_task.cancel()
                with contextlib.suppress(BaseException):
                    await self.daemon_task
            except Exception:
                log.exception("the daemon stopped with an error")
            self.daemon_task = None
        if self.control is not None:
            with contextlib.suppress(Exception):
                await self.control.close()
            self.control = None
        if self.daemon is not None:
            with contextlib.suppress(Exception):
                await self.daemon.close()
            self.daemon = None
        if self.server is not None and self.server_task is not None:
            self.server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self.server_task), STOP_TIMEOUT_S)
            except (TimeoutError, asyncio.CancelledError):
                self.server.force_exit = True
                self.server_task.cancel()
                with contextlib.suppress(BaseException):
                    await self.server_task
            except Exception:
                log.exception("the simulator stopped with an error")
            self.server_task = None
        if self.sim is not None:
            self.sim.close()
        self._release_logs()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _capture_logs(self) -> None:
        """The daemon and uvicorn log to a file in the temporary directory: the screen is the story's."""
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(lambda record: record.name != "httpx" or record.levelno >= logging.WARNING)
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        self._log_handler = handler

    def _release_logs(self) -> None:
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            logging.getLogger().setLevel(self._root_level)
            self._log_handler.close()
            self._log_handler = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8").splitlines()[-lines:])
        except OSError:
            return ""

    def daemon_failure(self) -> BaseException | None:
        return _task_failure(self.daemon_task) if self.daemon_task is not None else None


# ------------------------------------------------------------------------------------------------------------
# The story, beat by beat
# ------------------------------------------------------------------------------------------------------------


Emit = Callable[[str | None, str], None]
"""``emit(beat or None, line)``: one line of the story (a beat of :data:`BEATS`, or a context line)."""


@dataclass(frozen=True, slots=True)
class Told:
    """One line of the story: which tick told it, at what simulated instant, after how many real seconds."""

    tick: int
    beat: str | None
    at: float
    real_s: float
    text: str


@dataclass(frozen=True, slots=True)
class Seen:
    """One decision of the daemon, as the story read it from the ledger (what a repeatable demo repeats)."""

    tick: int
    rule: str
    action: str
    endpoint_id: str | None
    outcome: str
    at: float


class StoryDriver:
    """Tells the story tick by tick (called by :class:`DemoDaemon` right after each tick), and plays the
    simulator's next act at a fixed number of ticks after the beat that closes the previous one."""

    def __init__(self, stack: DemoStack, emit: Emit) -> None:
        self.stack = stack
        self.emit = emit
        self.started = time.monotonic()
        self.beats: dict[str, float] = {}
        """Beat → real seconds after the start when it was told."""
        self.beat_ticks: dict[str, int] = {}
        """Beat → the tick that told it."""
        self.told: list[Told] = []
        self.seen: list[Seen] = []
        self.acts: dict[str, int] = {}
        """Act ("hung", "flood") → the tick after which it was played."""
        self.done = asyncio.Event()
        self.saved_eur = 0.0
        self.hung_job_id: str | None = None
        self.hung_worker_id: str | None = None
        self.hung_over_limit_real: float | None = None
        """``time.monotonic()`` when the hung job ran past its limit (max execution + grace)."""
        self.hung_visible_s: float | None = None
        """Real seconds the hung job ran past its limit before the tick that cancelled it."""
        self.last_status: DaemonStatus | None = None
        self._tick = -1
        self._last_decision_id = 0
        self._told_start = False
        self._hung_started_at = 0.0
        self._next_tick_at = 0.0

    @property
    def missing(self) -> list[str]:
        return [beat for beat in BEATS if beat not in self.beats]

    async def run(self) -> None:
        """Until the whole story was told (the daemon calls :meth:`after_tick`)."""
        await self.done.wait()

    def narration(self) -> str | None:
        """While the hung job runs uncaught (slow motion): one live line for the dashboard, else None."""
        if "hung" not in self.acts or HUNG_JOB_CAUGHT in self.beats or self.hung_job_id is None:
            return None
        clock = self.stack.clock
        ran = clock.display_now() - self._hung_started_at
        limit = MAX_EXECUTION_S + GRACE_S
        if ran <= 0:
            return f"Slow motion ×{clock.rate:g}: hung job {self.hung_job_id} starts on {HUNG_ENDPOINT_ID}"
        state = "PAST its" if ran > limit else "under its"
        return (
            f"Slow motion ×{clock.rate:g}: hung job {self.hung_job_id} has run {ran:.0f} s on "
            f"{HUNG_ENDPOINT_ID}, {state} {limit:.0f} s limit; the watchdog's next tick is at "
            f"{sim_time(self._next_tick_at)}"
        )

    # -- one tick -------------------------------------------------------------------------------------------

    def after_tick(self, index: int, status: DaemonStatus | None) -> float:
        self._tick = index
        if status is not None:
            self.on_tick(status)
        return self._play_next_act()

    def on_tick(self, status: DaemonStatus) -> None:
        self.last_status = status
        if not self._told_start:
            self._told_start = True
            self._tell_start(status)
        for row in self._new_decisions():
            self.seen.append(
                Seen(self._tick, row.rule, row.action, row.endpoint_id, row.outcome, round(row.at, 3))
            )
            self._on_decision(row, status)
        self._check_worker_stopped(status)
        if not self.missing:
            self.done.set()

    def _new_decisions(self) -> list[DecisionRow]:
        daemon = self.stack.daemon
        assert daemon is not None
        rows = [row for row in daemon.ledger.recent_decisions(500) if row.id > self._last_decision_id]
        rows.sort(key=lambda row: row.id)
        if rows:
            self._last_decision_id = rows[-1].id
        return rows

    def _tell(self, beat: str | None, at: float, text: str) -> None:
        real_s = time.monotonic() - self.started
        if beat is not None:
            if beat in self.beats:
                return
            self.beats[beat] = real_s
            self.beat_ticks[beat] = self._tick
        self.told.append(Told(self._tick, beat, at, real_s, text))
        self.emit(beat, f"[{sim_time(at)}] {text}")

    def _tell_start(self, status: DaemonStatus) -> None:
        budget = status.budget
        sim = self.stack.sim
        assert sim is not None
        at = status.last_tick_at or self.stack.clock.now()
        if budget is None:
            self._tell(None, at, "The watchdog is watching the simulated account.")
            return
        self._tell(
            None,
            at,
            f"The month so far: {_eur(budget.spent_eur)} of {_eur(budget.monthly_eur)} "
            f"({_pct(budget.used_ratio)}; {_eur(budget.fixed_eur)} fixed, {_eur(budget.variable_eur)} GPU), "
            f"{budget.days_left:.1f} days left. RunPod's billing lags {story.BILLING_DELAY_S / 60:.0f} min: "
            f"a lunchtime batch (~{_eur(story.batch_usd(sim) / story.USD_PER_EUR)}) is not on "
            "the bill yet.",
        )

    def _on_decision(self, row: DecisionRow, status: DaemonStatus) -> None:
        if row.outcome in ("intended", "failed", "skipped") or row.mode != "enforce":
            return
        budget = status.budget
        if row.rule == "budget_brake" and row.action == "alert" and budget is not None:
            threshold = _threshold(row.dedupe_key)
            if threshold is not None and threshold >= 0.8 and BUDGET_80 not in self.beats:
                self._tell(
                    BUDGET_80,
                    row.at,
                    f"Budget {_pct(threshold)} reached: {_eur(budget.spent_eur)} of "
                    f"{_eur(budget.monthly_eur)} ({_eur(budget.fixed_eur)} fixed, "
                    f"{_eur(budget.variable_eur)} GPU), forecast "
                    f"{_eur(budget.forecast_eur)} for the month; alert raised.",
                )
            return
        if row.endpoint_id == HUNG_ENDPOINT_ID and row.action == "cancel_job" and row.outcome == "applied":
            eur = row.saved_usd / story.USD_PER_EUR
            self.saved_eur += eur
            self.hung_job_id = row.job_id
            self.hung_worker_id = row.worker_id
            if self.hung_over_limit_real is not None:
                self.hung_visible_s = time.monotonic() - self.hung_over_limit_real
            self._tell(
                HUNG_JOB_CAUGHT,
                row.at,
                f"Caught hung job {row.job_id} on {HUNG_ENDPOINT_ID} (no execution timeout, still "
                f"pinging, past the {MAX_EXECUTION_S + GRACE_S:.0f} s limit): cancelled; saved ~{_eur(eur)} "
                "it would have billed by the end of the month.",
            )
            return
        patch = row.patch or {}
        if (
            row.endpoint_id == HUNG_ENDPOINT_ID
            and row.action == "patch_config"
            and "execution_timeout_ms" in patch
            and row.outcome in ("applied", "verified")
        ):
            seconds = int(patch["execution_timeout_ms"]) / 1000
            self._tell(
                TIMEOUT_PATCHED,
                row.at,
                f"Patched execution timeout {seconds:.0f} s onto {HUNG_ENDPOINT_ID} (it had none): "
                "a hung handler can no longer bill for days.",
            )
            return
        if row.rule == "suspicious_traffic" and story.KEEPWARM_SOURCE in (row.dedupe_key or row.reason):
            self._tell(
                FLOOD_FLAGGED,
                row.at,
                f"Ping flood from {story.KEEPWARM_SOURCE} flagged on {row.endpoint_id}: "
                f"{_after_colon(row.reason)}",
            )
            return
        if row.outcome == "applied" and row.action != "alert":
            self._tell(
                None,
                row.at,
                f"The watchdog: {row.action} on {row.endpoint_id or 'the account'}: {row.reason}",
            )

    def _check_worker_stopped(self, status: DaemonStatus) -> None:
        if HUNG_JOB_CAUGHT not in self.beats or WORKER_STOPPED in self.beats:
            return
        endpoint = next((e for e in status.endpoints if e.id == HUNG_ENDPOINT_ID), None)
        if endpoint is None:
            return
        if sum(endpoint.workers.get(state, 0) for state in BILLED_BY_DEFAULT) == 0:
            worker = f"worker {self.hung_worker_id}" if self.hung_worker_id else "its worker"
            self._tell(
                WORKER_STOPPED,
                status.last_tick_at or self.stack.clock.now(),
                f"The hung job's {worker} stopped: {HUNG_ENDPOINT_ID} bills nothing any more.",
            )

    def _play_next_act(self) -> float:
        """Play the act due after this tick; return the pace until the next tick."""
        sim = self.stack.sim
        assert sim is not None
        clock = self.stack.clock
        if self._due(BUDGET_80) and "hung" not in self.acts:
            self.acts["hung"] = self._tick
            job_id = story.deploy_hung_job(sim)
            self.hung_job_id = job_id
            self._hung_started_at = clock.now() + story.HUNG_COLD_START_S
            self._next_tick_at = clock.now() + POLL_INTERVAL_S
            limit = MAX_EXECUTION_S + GRACE_S
            self._tell(
                None,
                clock.now(),
                f"A volunteer deploys {HUNG_ENDPOINT_ID} from an old template (no execution timeout) and "
                f"starts batch job {job_id}; its handler hangs while its heartbeat keeps pinging. Slow "
                f"motion (×{SLOW_MOTION_SPEED:g}) until the watchdog's next tick: watch it run past the "
                f"{limit:.0f} s limit.",
            )
            # Real moment the display passes start + cold start + limit (the rate applies from the tick's
            # start, see DemoDaemon.tick).
            daemon = self.stack.daemon
            assert daemon is not None
            began = daemon.tick_began
            self.hung_over_limit_real = began + (story.HUNG_COLD_START_S + limit) / SLOW_MOTION_SPEED
            return SLOW_MOTION_SPEED
        if self._due(HUNG_JOB_CAUGHT) and self._due(TIMEOUT_PATCHED) and "flood" not in self.acts:
            self.acts["flood"] = self._tick
            story.start_keepwarm_bot(sim, start_at=clock.now() + story.KEEPWARM_GAP_S / 2)
            self._tell(
                None,
                clock.now(),
                f"{story.KEEPWARM_SOURCE} starts sending a tiny job to {FLOOD_ENDPOINT_ID} every "
                f"{story.KEEPWARM_GAP_S:g} s, less than its 5 s idle timeout.",
            )
        return clock.speed

    def _due(self, beat: str) -> bool:
        """The beat was told at least ACT_PAUSE_TICKS ticks ago."""
        told = self.beat_ticks.get(beat)
        return told is not None and self._tick - told >= ACT_PAUSE_TICKS

    def summary(self, elapsed_s: float) -> str:
        status = self.last_status
        budget = status.budget if status is not None else None
        spend = (
            f"spend {_eur(budget.spent_eur)} of {_eur(budget.monthly_eur)} ({_pct(budget.used_ratio)})"
            if budget is not None
            else "no tick finished"
        )
        told = ", ".join(f"{beat} {self.beats[beat]:.1f} s" for beat in BEATS if beat in self.beats)
        simulated_min = (self.stack.clock.now() - self.stack.clock.start) / 60
        visible = (
            f", which ran past its limit for {self.hung_visible_s:.1f} real s first"
            if self.hung_visible_s is not None
            else ""
        )
        head = (
            "Summary: the whole story was told"
            if not self.missing
            else f"Summary: story incomplete, missing {', '.join(self.missing)}"
        )
        return (
            f"{head} in {elapsed_s:.1f} s ({simulated_min:.0f} simulated minutes at ×{self.stack.speed:g}): "
            f"{spend}; saved ~{_eur(self.saved_eur)} by cancelling the hung job{visible}. "
            f"Beats: {told or 'none'}."
        )


def _threshold(dedupe_key: str | None) -> float | None:
    parts = (dedupe_key or "").split(":")
    if len(parts) != 4 or parts[:2] != ["budget_brake", "alert"]:
        return None
    try:
        return float(parts[3])
    except ValueError:
        return None


def _after_colon(reason: str) -> str:
    """The finding's detail out of "suspicious traffic (kind) from SOURCE: DETAIL"."""
    return reason.split(": ", 1)[1] if ": " in reason else reason


# ------------------------------------------------------------------------------------------------------------
# Headless: the story as text
# ------------------------------------------------------------------------------------------------------------


def _task_failure(task: asyncio.Task[Any]) -> BaseException | None:
    if task.done() and not task.cancelled():
        return task.exception()
    return None


def _log_failure(task: asyncio.Task[Any]) -> None:
    failure = _task_failure(task)
    if failure is not None:
        log.error("the story driver failed", exc_info=failure)


def _install_stop_signals(loop: asyncio.AbstractEventLoop, on_stop: Callable[[], None]) -> list[int]:
    installed: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_stop)
            installed.append(sig)
    return installed


async def run_headless(duration_s: float, out: Callable[[str], None], *, must_finish: bool = True) -> int:
    """Tell the story as text until every beat happened, ``duration_s`` passed, or SIGINT/SIGTERM.

    Exit code 0 when the story was told, when interrupted, or when a duration the user chose ran out
    (``must_finish`` False); 1 when the default duration ran out first (the story is broken: CI must
    notice) or the daemon failed."""
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    installed = _install_stop_signals(loop, interrupted.set)
    started = time.monotonic()
    stack = DemoStack()
    driver: StoryDriver | None = None
    failure: BaseException | None = None
    try:
        async with stack:
            out(
                f"runpod-watchdog demo: a simulated RunPod account on {stack.base_url} (loopback only, the "
                f"simulator's local key), day {story.START_DAY} {story.START_HOUR:02d}:00 UTC, "
                f"×{stack.speed:g} real time; the daemon enforces, a tick every {POLL_INTERVAL_S:g} "
                "simulated seconds."
            )
            driver = StoryDriver(stack, lambda _beat, line: out(line))
            stack.run_daemon(driver)
            story_task = asyncio.create_task(driver.run(), name="demo-story")
            pending: list[asyncio.Future[Any]] = [
                asyncio.create_task(driver.done.wait()),
                asyncio.create_task(interrupted.wait()),
            ]
            if stack.daemon_task is not None:
                pending.append(asyncio.shield(stack.daemon_task))  # the daemon dying ends the story
            pending.append(asyncio.shield(story_task))  # and so does a broken story
            await asyncio.wait(pending, timeout=duration_s, return_when=asyncio.FIRST_COMPLETED)
            for task in [*pending, story_task]:
                task.cancel()
            for task in [*pending, story_task]:
                with contextlib.suppress(BaseException):
                    await task
            failure = stack.daemon_failure() or _task_failure(story_task)
            if failure is not None:
                print(f"runpod-watchdog demo: failed: {failure!r}", file=sys.stderr)
                print(stack.log_tail(), file=sys.stderr)
            elif interrupted.is_set():
                out("Interrupted: stopping the daemon and the simulator.")
            elif driver.missing and must_finish:
                print(
                    "runpod-watchdog demo: the story did not finish in time; the demo's log ends with:",
                    file=sys.stderr,
                )
                print(stack.log_tail(), file=sys.stderr)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    elapsed = time.monotonic() - started
    if driver is not None:
        out(driver.summary(elapsed))
    out("Stopped cleanly: daemon, simulator and temporary files are gone.")
    if failure is not None or driver is None:
        return 1
    if interrupted.is_set() or not must_finish:
        return 0
    return 0 if not driver.missing else 1


# ------------------------------------------------------------------------------------------------------------
# Interactive: the dashboard
# ------------------------------------------------------------------------------------------------------------


class DemoApp(WatchdogApp):
    """The dashboard, plus Ctrl-C to quit and the story's beats as notifications."""

    TITLE = "runpod-watchdog demo"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "quit_dashboard", "Quit", show=False, priority=True),
    ]

    def __init__(self, *args: Any, banner: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.banner = banner
        self.driver: StoryDriver | None = None
        self._pending_lines: list[str] = []

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = self.banner
        self.set_interval(0.5, self._narrate)
        self.notify(self.banner, title="runpod-watchdog demo", timeout=NOTIFY_S)
        for line in self._pending_lines:
            self.notify(line, title="Story", timeout=NOTIFY_S)
        self._pending_lines.clear()

    def _narrate(self) -> None:
        """The hung job's live line in the sub-title during the slow motion, else the banner."""
        line = self.driver.narration() if self.driver is not None else None
        self.sub_title = line or self.banner

    def tell(self, beat: str | None, line: str) -> None:
        if not self.is_running:
            self._pending_lines.append(line)
            return
        title = BEAT_TITLES.get(beat or "", "Story")
        if beat == HUNG_JOB_CAUGHT and (saved := re.search(r"saved ~\d+\.\d\d €", line)):
            title = f"{title}, {saved.group(0)}"
        self.notify(line, title=title, timeout=NOTIFY_S, severity="warning" if beat else "information")


async def run_dashboard() -> int:
    loop = asyncio.get_running_loop()
    async with DemoStack() as stack:
        assert stack.config is not None
        socket_path = stack.config.control.resolved_socket_path
        app = DemoApp(
            DaemonSource(socket_path, stack.config.ledger.resolved_path),
            ControlActions(socket_path),
            refresh_s=0.5,
            stale_after_s=3 * POLL_INTERVAL_S,
            clock=stack.clock.display_now,
            banner=(
                f"Simulated RunPod account on {stack.base_url} (loopback only, no API key needed), "
                f"×{stack.speed:g} real time. q or Ctrl-C quits."
            ),
        )
        installed = _install_stop_signals(loop, lambda: app.exit(0))
        driver = StoryDriver(stack, app.tell)
        app.driver = driver
        stack.run_daemon(driver)
        story_task = asyncio.create_task(driver.run(), name="demo-story")
        story_task.add_done_callback(_log_failure)
        try:
            await app.run_async()
        finally:
            story_task.cancel()
            with contextlib.suppress(BaseException):
                await story_task
            for sig in installed:
                loop.remove_signal_handler(sig)
        failure = stack.daemon_failure()
        if failure is not None:
            print(f"runpod-watchdog demo: the daemon failed: {failure}", file=sys.stderr)
            return 1
    return app.return_code if app.return_code is not None else 0


# ------------------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------------------


NOT_A_TERMINAL = (
    "runpod-watchdog demo: not a terminal (stdin and stdout must be a TTY for the dashboard): run it in a "
    "terminal ('ssh -t' over SSH), or 'runpod-watchdog demo --headless' for the story as text"
)


def demo_command(args: argparse.Namespace) -> int:
    """``runpod-watchdog demo [--headless [--duration S]]``; without ``--headless`` and without a terminal
    (a pipe, CI, ``ssh`` without ``-t``): one line on stderr and exit 2, instead of escape codes."""
    headless = bool(getattr(args, "headless", False))
    duration = getattr(args, "duration", None)
    if duration is not None and duration <= 0:
        print("runpod-watchdog demo: --duration must be > 0", file=sys.stderr)
        return 2
    if not headless and not is_terminal():
        print(NOT_A_TERMINAL, file=sys.stderr)
        return 2
    try:
        if headless:
            return asyncio.run(
                run_headless(
                    duration or DEFAULT_DURATION_S,
                    lambda line: print(line, flush=True),
                    must_finish=duration is None,
                )
            )
        return asyncio.run(run_dashboard())
    except KeyboardInterrupt:
        return 0


__all__ = [
    "BEATS",
    "DemoApp",
    "DemoStack",
    "StoryDriver",
    "demo_command",
    "demo_config",
    "run_headless",
]
