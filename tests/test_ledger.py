"""The ledger keeps the money honest: whole ticks, no lost or doubled GPU time, one writer, harmless readers.

Every test uses a real SQLite file under ``tmp_path``; the crash and concurrency tests run the writer as a
real subprocess (``tests/ledger_crash_writer.py``) and kill it with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_crash_writer import ORIGIN, STEP_S, USD_PER_GPU_SECOND, WORKERS

from watchdog.errors import LedgerError
from watchdog.ledger import (
    MIGRATIONS,
    SCHEMA_STEPS,
    AccountingInterval,
    Alert,
    BilledSpend,
    BrakeState,
    CommandRecord,
    ConfigChange,
    ConfigObservation,
    DecisionStep,
    JobUpdate,
    Ledger,
    LedgerReader,
    MonthTotals,
    SpendAccrual,
    TickRecord,
    TrafficCount,
    WorkerUpdate,
)
from watchdog.ledger_schema import Database, Migrations

CRASH_WRITER = Path(__file__).with_name("ledger_crash_writer.py")
REPO = Path(__file__).resolve().parent.parent

MARCH = 1_772_323_200.0  # 2026-03-01 00:00 UTC
APRIL = 1_775_001_600.0  # 2026-04-01 00:00 UTC
HOUR = 3600.0
DAY = 86400.0
T0 = MARCH + 10 * DAY  # 2026-03-11 00:00 UTC


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def ledger(ledger_path: Path) -> Iterator[Ledger]:
    with Ledger.open(ledger_path) as opened:
        yield opened


def tick(at: float, *, accounted_from: float | None = None, **parts: object) -> TickRecord:
    """A tick at ``at``; with ``accounted_from`` it accounts ``(accounted_from, at]``."""
    accounting = None if accounted_from is None else AccountingInterval(accounted_from, at)
    return TickRecord(
        started_at=at, finished_at=at + 0.5, ok=True, endpoints=1, accounting=accounting, **parts
    )


def config(idle_timeout_s: int = 5, **changes: object) -> ConfigObservation:
    base: dict[str, object] = {
        "endpoint_id": "ep-1",
        "name": "whisper",
        "workers_min": 0,
        "workers_max": 2,
        "idle_timeout_s": idle_timeout_s,
        "execution_timeout_ms": 600_000,
        "gpu_pools": ("AMPERE_16",),
        "raw": {"id": "ep-1", "version": 3},
    }
    return ConfigObservation(**{**base, **changes})  # type: ignore[arg-type]


def dump(path: Path) -> list[str]:
    """Every row of every table, as SQL: equal dumps mean equal ledgers."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return list(connection.iterdump())


def full_tick(at: float, accounted_from: float) -> TickRecord:
    """A tick touching every table a tick writes."""
    return tick(
        at,
        accounted_from=accounted_from,
        estimates=(SpendAccrual("ep-1", accounted_from - accounted_from % HOUR, 0.5, 2.0),),
        billed=(BilledSpend("ep-1", at - at % HOUR - HOUR, 1.25, 5.0),),
        configs=(config(idle_timeout_s=int(at) % 1000),),
        workers=(WorkerUpdate("w-1", "ep-1", "RUNNING", running_s=2.0, usd=0.5),),
        jobs=(JobUpdate(f"job-{at}", "ep-1", "IN_PROGRESS", "status"),),
        traffic=(TrafficCount("ep-1", "log", at - at % 60, requests=3),),
        brakes_set=(BrakeState("ep-1", "brake", since=at),),
        decisions=(DecisionStep(at, "budget", "brake", "enforce", "applied", "over budget"),),
        alerts=(Alert(f"alert-{at}", "budget", "warning", "over budget", 20.0),),
    )


# ---------------------------------------------------------------------------------------------------------------
# Opening: pragmas, migrations, the instance lock
# ---------------------------------------------------------------------------------------------------------------


def test_a_new_ledger_is_wal_with_full_sync_foreign_keys_and_incremental_vacuum(ledger: Ledger) -> None:
    connection = (
        ledger._db.conn
    )  # the writer's own connection: synchronous and foreign_keys are per connection
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert connection.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # INCREMENTAL
    assert connection.execute("PRAGMA busy_timeout").fetchone() == (5000,)


def test_migrations_are_versioned_and_opening_twice_changes_nothing(ledger_path: Path) -> None:
    with Ledger.open(ledger_path) as first:
        assert first.schema_steps() == list(SCHEMA_STEPS)
        first.record_tick(tick(T0, accounted_from=T0 - 5))
    schema_before = dump(ledger_path)

    with Ledger.open(ledger_path) as second:
        assert second.schema_steps() == list(SCHEMA_STEPS)
        assert second.last_accounted_at() == T0
    assert dump(ledger_path) == schema_before
    with contextlib.closing(sqlite3.connect(ledger_path)) as connection:
        recorded = connection.execute(
            "SELECT migration_set, name FROM _sqlite_migrations ORDER BY id"
        ).fetchall()
    assert recorded == [("runpod_watchdog_ledger", name) for name in SCHEMA_STEPS]


def test_a_ledger_from_a_newer_version_is_refused(ledger_path: Path) -> None:
    Ledger.open(ledger_path).close()
    with contextlib.closing(sqlite3.connect(ledger_path)) as connection, connection:
        connection.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
            " VALUES ('runpod_watchdog_ledger', '9999_from_the_future', 'x')"
        )
    with pytest.raises(LedgerError, match=r"newer runpod-watchdog.*9999_from_the_future"):
        Ledger.open(ledger_path)


# The migrations bookkeeping exactly as sqlite-utils 4.2.1 wrote it (sqlite_utils/migrations.py:
# Migrations.ensure_migrations_table and _record_applied), when the ledger used sqlite-utils: every ledger
# written before the move to the standard library (watchdog/ledger_schema.py) has it, and an older
# runpod-watchdog reads only this. sqlite-utils is no longer installed, so it is written here by hand.
SQLITE_UTILS_MIGRATIONS_TABLE = (
    'CREATE TABLE "_sqlite_migrations" (\n'
    '   "id" INTEGER PRIMARY KEY,\n'
    '   "migration_set" TEXT,\n'
    '   "name" TEXT,\n'
    '   "applied_at" TEXT\n'
    ")"
)
SQLITE_UTILS_MIGRATIONS_INDEX = (
    'CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"\n'
    '    ON "_sqlite_migrations" ("migration_set", "name")'
)
APPLIED_AT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00")  # str(datetime.now(UTC))


def write_ledger_as_sqlite_utils_did(path: Path, steps: int) -> list[tuple[int, str, str, str]]:
    """A ledger as runpod-watchdog with sqlite-utils 4.2.1 left it after its first ``steps`` schema steps:
    the steps' own SQL, each in one transaction with its bookkeeping row; returns the rows."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        connection.execute("PRAGMA journal_mode=wal")
        connection.execute("BEGIN")
        connection.execute(SQLITE_UTILS_MIGRATIONS_TABLE)
        connection.execute("COMMIT")
        connection.execute(SQLITE_UTILS_MIGRATIONS_INDEX)
        for day, migration in enumerate(MIGRATIONS._migrations[:steps], start=1):
            connection.execute("BEGIN")
            migration.fn(connection)  # type: ignore[arg-type]  # the steps only call execute(sql)
            connection.execute(
                'INSERT INTO "_sqlite_migrations" ("applied_at", "migration_set", "name") VALUES (?, ?, ?)',
                [f"2026-02-{day:02d} 09:30:00.{day:06d}+00:00", "runpod_watchdog_ledger", migration.name],
            )
            connection.execute("COMMIT")
        return connection.execute("SELECT * FROM _sqlite_migrations ORDER BY id").fetchall()


def bookkeeping(path: Path) -> tuple[list[tuple[str, str]], list[tuple[int, str, str, str]]]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        schema = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE tbl_name = '_sqlite_migrations' ORDER BY name"
        ).fetchall()
        return schema, connection.execute("SELECT * FROM _sqlite_migrations ORDER BY id").fetchall()


def test_a_ledger_written_with_sqlite_utils_opens_at_its_version_without_rerunning_a_step(
    ledger_path: Path,
) -> None:
    rows = write_ledger_as_sqlite_utils_did(ledger_path, len(SCHEMA_STEPS))
    before = dump(ledger_path)
    with Ledger.open(ledger_path) as ledger:
        assert ledger.schema_steps() == list(SCHEMA_STEPS) == [row[2] for row in rows]
    with LedgerReader.open(ledger_path) as reader:
        assert reader.schema_steps() == list(SCHEMA_STEPS)
    assert dump(ledger_path) == before  # no step re-ran, no bookkeeping row added or rewritten


def test_a_ledger_written_with_sqlite_utils_gets_the_later_steps_recorded_the_same_way(
    ledger_path: Path,
) -> None:
    rows = write_ledger_as_sqlite_utils_did(ledger_path, len(SCHEMA_STEPS) - 1)
    with Ledger.open(ledger_path) as ledger:
        assert ledger.schema_steps() == list(SCHEMA_STEPS)
        ledger.record_tick(full_tick(T0, accounted_from=T0 - 5))  # the last step's tables are there
    schema, after = bookkeeping(ledger_path)
    assert schema == [
        ("_sqlite_migrations", SQLITE_UTILS_MIGRATIONS_TABLE),
        ("idx__sqlite_migrations_migration_set_name", SQLITE_UTILS_MIGRATIONS_INDEX),
    ]
    assert after[:-1] == rows
    new_id, migration_set, name, applied_at = after[-1]
    assert (new_id, migration_set, name) == (len(SCHEMA_STEPS), "runpod_watchdog_ledger", SCHEMA_STEPS[-1])
    assert APPLIED_AT.fullmatch(applied_at), applied_at


def test_a_new_ledgers_bookkeeping_is_the_one_sqlite_utils_wrote_so_older_versions_read_it(
    ledger_path: Path,
) -> None:
    Ledger.open(ledger_path).close()
    schema, rows = bookkeeping(ledger_path)
    assert schema == [
        ("_sqlite_migrations", SQLITE_UTILS_MIGRATIONS_TABLE),
        ("idx__sqlite_migrations_migration_set_name", SQLITE_UTILS_MIGRATIONS_INDEX),
    ]
    assert [row[:3] for row in rows] == [
        (number, "runpod_watchdog_ledger", name) for number, name in enumerate(SCHEMA_STEPS, start=1)
    ]
    assert all(APPLIED_AT.fullmatch(row[3]) for row in rows), rows


def test_bookkeeping_keyed_by_set_and_name_is_converted_to_the_id_key_as_sqlite_utils_did(
    ledger_path: Path,
) -> None:
    """The sqlite-migrate plugin's table (before sqlite-utils had migrations), which sqlite-utils converts."""
    write_ledger_as_sqlite_utils_did(ledger_path, len(SCHEMA_STEPS))
    with contextlib.closing(sqlite3.connect(ledger_path)) as connection, connection:
        connection.execute("DROP TABLE _sqlite_migrations")
        connection.execute(
            "CREATE TABLE _sqlite_migrations (migration_set TEXT, name TEXT, applied_at TEXT,"
            " PRIMARY KEY (migration_set, name))"
        )
        connection.executemany(
            "INSERT INTO _sqlite_migrations VALUES ('runpod_watchdog_ledger', ?, 'then')",
            [(name,) for name in SCHEMA_STEPS],
        )
    with Ledger.open(ledger_path) as ledger:
        assert ledger.schema_steps() == list(SCHEMA_STEPS)
    schema, rows = bookkeeping(ledger_path)
    assert schema == [
        ("_sqlite_migrations", SQLITE_UTILS_MIGRATIONS_TABLE),
        ("idx__sqlite_migrations_migration_set_name", SQLITE_UTILS_MIGRATIONS_INDEX),
    ]
    assert rows == [
        (number, "runpod_watchdog_ledger", name, "then") for number, name in enumerate(SCHEMA_STEPS, start=1)
    ]


def test_a_failing_step_is_rolled_back_with_no_row_and_stays_pending(tmp_path: Path) -> None:
    steps = Migrations("test_set")

    @steps(name="one")
    def _one(db: Database) -> None:
        db.execute("CREATE TABLE one (x)")

    @steps(name="two")
    def _two(db: Database) -> None:
        db.execute("CREATE TABLE two (x)")
        raise RuntimeError("step two fails half-way")

    with contextlib.closing(sqlite3.connect(tmp_path / "db.sqlite3")) as connection:
        db = Database(connection)
        with pytest.raises(RuntimeError, match="half-way"):
            steps.apply(db)
        assert [m.name for m in steps.applied(db)] == ["one"]
        assert [m.name for m in steps.pending(db)] == ["two"]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"_sqlite_migrations", "one"}
        with pytest.raises(ValueError, match="already registered"):
            steps(name="one")(_one)


def test_atomic_commits_rolls_back_and_nests_as_savepoints_and_execute_autocommits(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        db = Database(connection)
        db.execute("CREATE TABLE t (x INTEGER UNIQUE)")
        db.execute("INSERT INTO t VALUES (1)")  # outside atomic(): committed at once
        assert not connection.in_transaction
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("INSERT INTO t VALUES (1)")
        assert not connection.in_transaction  # the failed write's implicit transaction is rolled back
        with db.atomic():
            db.execute("INSERT INTO t VALUES (2)")
            with pytest.raises(RuntimeError), db.atomic():  # nested: a savepoint
                db.execute("INSERT INTO t VALUES (3)")
                raise RuntimeError
            assert connection.in_transaction  # the outer transaction goes on
            db.execute("INSERT INTO t VALUES (4)")
        with pytest.raises(RuntimeError), db.atomic():
            db.execute("INSERT INTO t VALUES (5)")
            raise RuntimeError
        assert not connection.in_transaction
    with contextlib.closing(sqlite3.connect(path)) as other:  # what another connection sees: committed rows
        assert other.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,), (4,)]


def test_a_file_that_is_not_sqlite_is_a_ledger_error(ledger_path: Path) -> None:
    ledger_path.write_bytes(b"this is not a database, just some text that is long enough" * 100)
    with pytest.raises(LedgerError, match="cannot open the ledger"):
        Ledger.open(ledger_path)
    with pytest.raises(LedgerError, match="cannot read the ledger"):
        LedgerReader.open(ledger_path)


def test_a_missing_directory_is_a_ledger_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="does not exist"):
        Ledger.open(tmp_path / "nowhere" / "ledger.sqlite3")


def test_a_second_instance_in_the_same_process_fails_fast_naming_the_pid(ledger: Ledger) -> None:
    with pytest.raises(LedgerError) as caught:
        Ledger.open(ledger.path)
    assert str(caught.value) == f"another runpod-watchdog holds the ledger {ledger.path} (pid {os.getpid()})"


def test_a_second_instance_fails_while_another_process_holds_the_ledger_and_not_after_it_died(
    ledger_path: Path,
) -> None:
    holder = start_crash_writer(ledger_path)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().startswith("ack ")
        started = time.monotonic()
        with pytest.raises(LedgerError, match=rf"holds the ledger .*ledger\.sqlite3 \(pid {holder.pid}\)"):
            Ledger.open(ledger_path)
        assert time.monotonic() - started < 1.0  # fails fast, does not wait for the lock
    finally:
        holder.kill()
        holder.communicate()
    with Ledger.open(ledger_path) as after_death:  # the kernel released the lock with the process
        assert after_death.latest_tick() is not None


# ---------------------------------------------------------------------------------------------------------------
# record_tick: atomicity, accounting, configuration history, spend
# ---------------------------------------------------------------------------------------------------------------


def test_a_tick_that_fails_half_way_leaves_no_trace(ledger: Ledger, ledger_path: Path) -> None:
    ledger.record_tick(full_tick(T0, accounted_from=T0 - 5))
    before = dump(ledger_path)
    broken = full_tick(T0 + 5, accounted_from=T0)
    # The decisions are written after the tick row, spend, configs, workers, jobs and traffic: a CHECK
    # constraint failing there must take all of them back.
    bad_decision = DecisionStep(T0 + 5, "budget", "brake", "enforce", "exploded", "x")  # type: ignore[arg-type]
    broken = TickRecord(**{**_fields(broken), "decisions": (bad_decision,)})

    with pytest.raises(LedgerError, match="CHECK constraint failed"):
        ledger.record_tick(broken)

    assert dump(ledger_path) == before
    assert ledger.last_accounted_at() == T0
    # The same interval can then be recorded: nothing of the failed attempt was counted.
    ledger.record_tick(full_tick(T0 + 5, accounted_from=T0))
    assert ledger.last_accounted_at() == T0 + 5


def test_a_python_error_mid_tick_also_leaves_no_trace(
    ledger: Ledger, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.record_tick(full_tick(T0, accounted_from=T0 - 5))
    before = dump(ledger_path)

    def explode(*_args: object) -> None:
        raise RuntimeError("the daemon died in the middle of the tick")

    monkeypatch.setattr(Ledger, "_write_brakes", staticmethod(explode))
    with pytest.raises(RuntimeError, match="died in the middle"):
        ledger.record_tick(full_tick(T0 + 5, accounted_from=T0))
    assert dump(ledger_path) == before


def _fields(record: TickRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in TickRecord.__dataclass_fields__}


def test_accounting_must_continue_exactly_where_it_stopped(ledger: Ledger, ledger_path: Path) -> None:
    ledger.record_tick(tick(T0, accounted_from=T0 - 5, estimates=(SpendAccrual("ep-1", T0 - HOUR, 1.0, 4),)))
    before = dump(ledger_path)

    with pytest.raises(LedgerError, match="refusing to count time twice"):  # the same interval again
        ledger.record_tick(tick(T0, accounted_from=T0 - 5))
    with pytest.raises(LedgerError, match="accounted up to"):  # overlapping
        ledger.record_tick(tick(T0 + 5, accounted_from=T0 - 1))
    with pytest.raises(LedgerError, match="accounted up to"):  # a hole
        ledger.record_tick(tick(T0 + 10, accounted_from=T0 + 5))
    with pytest.raises(LedgerError, match="outside the accounted interval"):
        ledger.record_tick(
            tick(T0 + 5, accounted_from=T0, estimates=(SpendAccrual("ep-1", T0 + HOUR, 1, 1),))
        )
    with pytest.raises(LedgerError, match="not the start"):
        ledger.record_tick(tick(T0 + 5, accounted_from=T0, estimates=(SpendAccrual("ep-1", T0 + 1, 1, 1),)))
    with pytest.raises(LedgerError, match="needs the accounting interval"):
        ledger.record_tick(tick(T0 + 5, estimates=(SpendAccrual("ep-1", T0, 1, 1),)))
    assert dump(ledger_path) == before

    ledger.record_tick(tick(T0 + 5, accounted_from=T0))
    ledger.record_tick(tick(T0 + 9))  # a blind tick accounts nothing, and need not
    assert ledger.last_accounted_at() == T0 + 5


def test_estimates_add_up_and_billed_spend_replaces(ledger: Ledger) -> None:
    hour = T0
    ledger.record_tick(
        tick(
            hour + 5,
            accounted_from=hour,
            estimates=(SpendAccrual("ep-1", hour, 0.25, 5), SpendAccrual("ep-2", hour, 0.5, 5)),
            billed=(BilledSpend("ep-1", hour - HOUR, 1.0, 40),),
        )
    )
    ledger.record_tick(
        tick(
            hour + 10,
            accounted_from=hour + 5,
            estimates=(SpendAccrual("ep-1", hour, 0.125, 5),),
            billed=(BilledSpend("ep-1", hour - HOUR, 0.75, 30),),
        )
    )

    assert ledger.month_spend_by_hour(MARCH) == {
        ("ep-1", hour, "estimate"): 0.375,
        ("ep-2", hour, "estimate"): 0.5,
        ("ep-1", hour - HOUR, "billed"): 0.75,
    }
    assert ledger.month_totals(MARCH) == MonthTotals(estimate_usd=0.875, billed_usd=0.75)
    estimate, billed = ledger.month_totals(MARCH)
    assert (estimate, billed) == (0.875, 0.75)
    assert ledger.month_totals(APRIL) == (0.0, 0.0)
    with pytest.raises(ValueError, match="start of a UTC month"):
        ledger.month_totals(MARCH + 1)


def test_an_interval_crossing_an_hour_accrues_to_both_hours(ledger: Ledger) -> None:
    ledger.record_tick(
        tick(
            T0 + 3,
            accounted_from=T0 - 4,
            estimates=(SpendAccrual("ep-1", T0 - HOUR, 1.0, 4), SpendAccrual("ep-1", T0, 0.75, 3)),
        )
    )
    assert ledger.month_spend_by_hour(MARCH) == {
        ("ep-1", T0 - HOUR, "estimate"): 1.0,
        ("ep-1", T0, "estimate"): 0.75,
    }


def test_a_config_row_is_written_only_when_the_config_changed(ledger: Ledger) -> None:
    first = ledger.record_tick(tick(T0, configs=(config(),)))
    again = ledger.record_tick(tick(T0 + 5, configs=(config(),)))
    volatile_only = ledger.record_tick(tick(T0 + 10, configs=(config(raw={"id": "ep-1", "version": 4}),)))
    drift = ledger.record_tick(tick(T0 + 15, configs=(config(idle_timeout_s=3600, workers_max=5),)))
    back = ledger.record_tick(tick(T0 + 20, configs=(config(),)))

    assert first.config_changes == (ConfigChange("ep-1", None),)
    assert again.config_changes == volatile_only.config_changes == ()
    assert drift.config_changes == (ConfigChange("ep-1", ("workers_max", "idle_timeout_s")),)
    assert back.config_changes == (ConfigChange("ep-1", ("workers_max", "idle_timeout_s")),)
    history = ledger.config_history("ep-1")
    assert [(row.observed_at, row.idle_timeout_s, row.changed_fields) for row in history] == [
        (T0, 5, None),
        (T0 + 15, 3600, ("workers_max", "idle_timeout_s")),
        (T0 + 20, 5, ("workers_max", "idle_timeout_s")),
    ]
    assert history[0].gpu_pools == ("AMPERE_16",)
    assert history[0].raw == {"id": "ep-1", "version": 3}
    assert ledger.latest_configs()["ep-1"].id == history[-1].id
    assert ledger.config_history("ep-unknown") == []


def test_worker_sessions_add_their_seconds_and_close_and_reopen(ledger: Ledger) -> None:
    ledger.record_tick(
        tick(T0, workers=(WorkerUpdate("w-1", "ep-1", "INITIALIZING", "A100", initializing_s=5),))
    )
    ledger.record_tick(tick(T0 + 5, workers=(WorkerUpdate("w-1", "ep-1", "RUNNING", running_s=5, usd=0.25),)))
    ledger.record_tick(tick(T0 + 10, workers=(WorkerUpdate("w-1", "ep-1", "IDLE", idle_s=5, usd=0.25),)))
    (session,) = ledger.open_worker_sessions()
    assert (session.first_seen_at, session.last_seen_at, session.last_status) == (T0, T0 + 10, "IDLE")
    assert (session.initializing_s, session.running_s, session.idle_s, session.estimated_usd) == (
        5,
        5,
        5,
        0.5,
    )
    assert session.gpu_type_id == "A100"  # kept when a later update does not repeat it

    ledger.record_tick(
        tick(T0 + 15, workers=(WorkerUpdate("w-1", "ep-1", "IDLE", idle_s=5, ended_at=T0 + 15),))
    )
    assert ledger.open_worker_sessions() == []
    ledger.record_tick(tick(T0 + 20, workers=(WorkerUpdate("w-1", "ep-1", "RUNNING", running_s=1),)))
    (reopened,) = ledger.open_worker_sessions()
    assert (reopened.ended_at, reopened.running_s, reopened.first_seen_at) == (None, 6, T0)


def test_jobs_keep_what_is_known_when_an_update_omits_it(ledger: Ledger) -> None:
    ledger.record_tick(tick(T0, jobs=(JobUpdate("j-1", "ep-1", "IN_QUEUE", "status"),)))
    ledger.record_tick(
        tick(T0 + 5, jobs=(JobUpdate("j-1", "ep-1", "IN_PROGRESS", "status", "w-1", started_at=T0 + 2),))
    )
    ledger.record_tick(
        tick(
            T0 + 9,
            jobs=(JobUpdate("j-1", "ep-1", "COMPLETED", "status", finished_at=T0 + 8, execution_ms=6000),),
        )
    )
    row = ledger._rows("SELECT * FROM jobs")
    assert row == [
        {
            "job_id": "j-1",
            "endpoint_id": "ep-1",
            "worker_id": "w-1",
            "status": "COMPLETED",
            "first_seen_at": T0,
            "started_at": T0 + 2,
            "finished_at": T0 + 8,
            "delay_ms": None,
            "execution_ms": 6000,
            "source": "status",
        }
    ]


def test_traffic_adds_per_minute(ledger: Ledger) -> None:
    minute = T0 + 60
    ledger.record_tick(tick(minute + 5, traffic=(TrafficCount("ep-1", "log", minute, requests=2, pings=1),)))
    ledger.record_tick(tick(minute + 10, traffic=(TrafficCount("ep-1", "log", minute, requests=3),)))
    ledger.record_tick(tick(minute + 65, traffic=(TrafficCount("ep-1", "log", minute + 60, pings=4),)))
    assert ledger.traffic_since(minute + 30) == [
        TrafficCount("ep-1", "log", minute, requests=5, pings=1),
        TrafficCount("ep-1", "log", minute + 60, requests=0, pings=4),
    ]
    assert ledger.traffic_since(minute + 60) == [TrafficCount("ep-1", "log", minute + 60, 0, 4)]
    with pytest.raises(LedgerError, match="traffic minute"):
        ledger.record_tick(tick(minute + 70, traffic=(TrafficCount("ep-1", "log", minute + 1, 1),)))


def test_brake_states_are_set_replaced_and_cleared(ledger: Ledger) -> None:
    brake = BrakeState("ep-1", "brake", since=T0, month=MARCH, previous={"workersMax": 2})
    ledger.record_tick(tick(T0, brakes_set=(brake, BrakeState("ep-2", "idle", since=T0, until=T0 + 600))))
    assert ledger.brake_states() == {"ep-1": brake, "ep-2": BrakeState("ep-2", "idle", T0, T0 + 600)}
    ledger.record_tick(
        tick(T0 + 5, brakes_cleared=("ep-2",), brakes_set=(BrakeState("ep-1", "manual", T0 + 5),))
    )
    assert ledger.brake_states() == {"ep-1": BrakeState("ep-1", "manual", T0 + 5)}


def test_decisions_are_an_audit_log_newest_first(ledger: Ledger) -> None:
    proposed = DecisionStep(
        T0, "max_execution", "cancel", "enforce", "proposed", "ran 900 s", job_id="j", dedupe_key="k"
    )
    applied = DecisionStep(
        T0 + 5, "max_execution", "cancel", "enforce", "applied", "ran 900 s", dedupe_key="k"
    )
    first = ledger.record_tick(tick(T0, decisions=(proposed,)))
    ledger.record_tick(tick(T0 + 5, decisions=(applied,)))
    command = ledger.enqueue_command("cancel_job", {"job_id": "j"}, T0 + 6)
    verified = DecisionStep(T0 + 7, "max_execution", "cancel", "enforce", "verified", "gone", dedupe_key="k")
    ledger.record_command(CommandRecord(command, T0 + 7, "done", {"ok": True}, decisions=(verified,)))

    assert [row.outcome for row in ledger.recent_decisions(10)] == ["verified", "applied", "proposed"]
    assert [row.outcome for row in ledger.recent_decisions(1)] == ["verified"]
    steps = ledger.decisions_with_key("k")
    assert [(row.outcome, row.tick_id) for row in steps] == [
        ("proposed", first.tick_id),
        ("applied", first.tick_id + 1),
        ("verified", None),
    ]


def test_a_tick_can_store_meta_entries_but_not_the_ledgers_own(ledger: Ledger, ledger_path: Path) -> None:
    ledger.record_tick(tick(T0, accounted_from=T0 - 5, meta={"status": '{"mode": "enforce"}'}))
    assert ledger.meta("status") == '{"mode": "enforce"}'
    before = dump(ledger_path)
    with pytest.raises(LedgerError, match="belong to the ledger itself"):
        ledger.record_tick(tick(T0 + 5, meta={"last_accounted_at": "0.0"}))
    assert dump(ledger_path) == before
    with LedgerReader.open(ledger_path) as reader:
        assert reader.meta("status") == '{"mode": "enforce"}'
        assert reader.meta("missing") is None


# ---------------------------------------------------------------------------------------------------------------
# Alert outbox and commands
# ---------------------------------------------------------------------------------------------------------------


def test_the_alert_outbox_deduplicates_by_key_and_tracks_delivery(ledger: Ledger) -> None:
    assert ledger.enqueue_alert("budget-80-2026-03", "budget", "warning", "80 % used", 16.0, T0) is True
    assert ledger.enqueue_alert("budget-80-2026-03", "budget", "warning", "again", 16.5, T0 + 1) is False
    recorded = ledger.record_tick(
        tick(
            T0 + 5,
            alerts=(
                Alert("budget-80-2026-03", "budget", "warning", "dup"),
                Alert("runaway-ep-1", "k", "critical", "t"),
            ),
        )
    )
    assert recorded.new_alerts == ("runaway-ep-1",)
    (alert,) = [a for a in ledger.pending_alerts(10) if a.key == "budget-80-2026-03"]
    assert (alert.text, alert.eur, alert.state, alert.attempts, alert.created_at) == (
        "80 % used",
        16.0,
        "pending",
        0,
        T0,
    )
    assert [a.key for a in ledger.pending_alerts(1)] == ["budget-80-2026-03"]  # oldest first

    ledger.mark_alert_failed("budget-80-2026-03", T0 + 10, "HTTP 503")
    (failed,) = [a for a in ledger.pending_alerts(10) if a.key == "budget-80-2026-03"]
    assert (failed.state, failed.attempts, failed.last_attempt_at, failed.last_error) == (
        "failed",
        1,
        T0 + 10,
        "HTTP 503",
    )

    ledger.mark_alert_sent("budget-80-2026-03", T0 + 20)
    assert [a.key for a in ledger.pending_alerts(10)] == ["runaway-ep-1"]
    ledger.mark_alert_failed("budget-80-2026-03", T0 + 30, "late retry")  # never un-sends an alert
    sent = next(a for a in ledger.recent_alerts(10) if a.key == "budget-80-2026-03")
    assert (sent.state, sent.attempts, sent.sent_at, sent.last_error) == ("sent", 2, T0 + 20, None)

    ledger.acknowledge_alert("budget-80-2026-03", T0 + 40)
    ledger.acknowledge_alert("budget-80-2026-03", T0 + 50)
    assert (
        next(a for a in ledger.recent_alerts(10) if a.key == "budget-80-2026-03").acknowledged_at == T0 + 40
    )
    assert [a.key for a in ledger.recent_alerts(10)] == ["runaway-ep-1", "budget-80-2026-03"]
    with pytest.raises(LedgerError, match="no alert with key 'nope'"):
        ledger.mark_alert_sent("nope", T0)


def test_commands_are_queued_and_finished_once(ledger: Ledger) -> None:
    first = ledger.enqueue_command("pause", {"endpoint_id": "ep-1"}, T0)
    second = ledger.enqueue_command("cancel_job", {"endpoint_id": "ep-1", "job_id": "j"}, T0 + 1)
    assert [(c.id, c.kind, c.args, c.state) for c in ledger.pending_commands()] == [
        (first, "pause", {"endpoint_id": "ep-1"}, "pending"),
        (second, "cancel_job", {"endpoint_id": "ep-1", "job_id": "j"}, "pending"),
    ]
    ledger.finish_command(first, "done", {"workersMax": 0}, T0 + 2)
    assert [c.id for c in ledger.pending_commands()] == [second]
    finished = ledger.command(first)
    assert finished is not None
    assert (finished.state, finished.result, finished.done_at) == ("done", {"workersMax": 0}, T0 + 2)
    with pytest.raises(LedgerError, match=f"no pending command {first}"):
        ledger.finish_command(first, "failed", "twice", T0 + 3)
    with pytest.raises(ValueError, match="done, failed or rejected"):
        ledger.finish_command(second, "pending", None, T0 + 3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# The read-only reader
# ---------------------------------------------------------------------------------------------------------------


def test_the_reader_explains_a_missing_ledger(tmp_path: Path) -> None:
    missing = tmp_path / "state" / "ledger.sqlite3"
    with pytest.raises(LedgerError, match=rf"no ledger at {missing}: start the runpod-watchdog daemon first"):
        LedgerReader.open(missing)
    assert not missing.exists()


def test_the_reader_refuses_a_database_that_is_not_a_ledger(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite3"
    with contextlib.closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE t (x)")
    with pytest.raises(LedgerError, match="not a runpod-watchdog ledger"):
        LedgerReader.open(other)


def test_the_reader_reads_beside_the_writer_and_after_it_stopped(ledger_path: Path) -> None:
    with Ledger.open(ledger_path) as writer:
        writer.record_tick(full_tick(T0, accounted_from=T0 - 5))
        with LedgerReader.open(ledger_path) as reader:
            assert reader.latest_tick() == writer.latest_tick()
            writer.record_tick(full_tick(T0 + 5, accounted_from=T0))
            latest = reader.latest_tick()
            assert latest is not None
            assert latest.started_at == T0 + 5
            assert reader.in_transaction is False  # plain reads hold nothing open
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reader._db.conn.execute("DELETE FROM ticks")
    with LedgerReader.open(
        ledger_path
    ) as reader:  # the TUI still shows the last tick while the daemon is down
        assert reader.last_accounted_at() == T0 + 5
        assert reader.month_totals(MARCH).estimate_usd == 1.0
        assert reader.brake_states()["ep-1"].kind == "brake"
        assert len(reader.recent_decisions(5)) == 2
        assert reader.pending_alerts(5)[0].key == f"alert-{T0}"


def test_readers_see_whole_ticks_only_while_a_writer_process_commits(ledger_path: Path) -> None:
    writer = start_crash_writer(ledger_path)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().startswith("ack ")
        seen_ticks: set[int] = set()
        with LedgerReader.open(ledger_path) as reader:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                with reader.consistent():
                    latest = reader.latest_tick()
                    accounted = reader.last_accounted_at()
                    totals = reader.month_totals(MARCH)
                    open_sessions = reader.open_worker_sessions()
                assert reader.in_transaction is False
                assert latest is not None
                assert accounted is not None
                # Tick n accounted (ORIGIN + (n-1)·STEP, ORIGIN + n·STEP] together with its spend and its
                # worker seconds; a torn tick would break one of these equalities.
                assert accounted == ORIGIN + latest.id * STEP_S
                gpu_seconds = (accounted - ORIGIN) * sum(WORKERS.values())
                assert totals.estimate_usd == gpu_seconds * USD_PER_GPU_SECOND
                assert open_sessions[0].running_s == accounted - ORIGIN
                seen_ticks.add(latest.id)
    finally:
        writer.kill()
        writer.communicate()
    assert len(seen_ticks) > 20, "the reader should have watched the writer make progress"


def test_a_reader_between_reads_does_not_block_checkpoints(ledger_path: Path) -> None:
    with Ledger.open(ledger_path, busy_timeout_ms=200) as writer, LedgerReader.open(ledger_path) as reader:
        start = T0
        for number in range(300):
            writer.record_tick(full_tick(start + 5, accounted_from=start))
            start += 5
            if number % 10 == 0:
                assert reader.latest_tick() is not None
                with reader.consistent():
                    reader.month_totals(MARCH)
        assert Path(f"{ledger_path}-wal").stat().st_size > 0
        busy, _, _ = writer.checkpoint()
        assert busy == 0
        assert Path(f"{ledger_path}-wal").stat().st_size == 0

        # The failure this guards against: a reader that keeps a read transaction open.
        with contextlib.closing(sqlite3.connect(f"{ledger_path.as_uri()}?mode=ro", uri=True)) as careless:
            careless.execute("BEGIN")
            careless.execute("SELECT count(*) FROM ticks").fetchone()
            for _ in range(20):
                writer.record_tick(full_tick(start + 5, accounted_from=start))
                start += 5
            busy, _, _ = writer.checkpoint()
            assert busy == 1
            assert Path(f"{ledger_path}-wal").stat().st_size > 0


# ---------------------------------------------------------------------------------------------------------------
# Crash safety: SIGKILL at random moments
# ---------------------------------------------------------------------------------------------------------------


def start_crash_writer(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CRASH_WRITER), str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_at_random_moments_loses_no_acknowledged_tick_and_counts_no_second_twice(
    ledger_path: Path,
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    context = f"(random seed {seed})"
    for round_number in range(10):
        writer = start_crash_writer(ledger_path)
        assert writer.stdout is not None
        assert writer.stderr is not None
        first = writer.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.35))
        writer.send_signal(signal.SIGKILL)
        rest = writer.stdout.read()
        writer.wait()
        assert first.startswith("ack "), f"writer did not start {context}: {writer.stderr.read()}"
        writer.stderr.close()
        writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL
        acks = [line.split() for line in [first, *rest.splitlines(keepends=True)] if line.endswith("\n")]
        acked_ids = [int(ack[1]) for ack in acks]
        last_acked_end = float(acks[-1][2])

        with contextlib.closing(sqlite3.connect(ledger_path)) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)], context
            present = connection.execute(
                "SELECT count(*) FROM ticks WHERE id BETWEEN ? AND ?", [acked_ids[0], acked_ids[-1]]
            ).fetchone()[0]
            assert present == acked_ids[-1] - acked_ids[0] + 1, (
                f"round {round_number}: acked ticks lost {context}"
            )
            (accounted,) = connection.execute(
                "SELECT value FROM meta WHERE key = 'last_accounted_at'"
            ).fetchone()
        # At most one tick committed after the last acknowledgement (killed between COMMIT and print).
        assert last_acked_end <= float(accounted) <= last_acked_end + STEP_S, context

    with contextlib.closing(sqlite3.connect(ledger_path)) as connection:
        accounted = float(
            connection.execute("SELECT value FROM meta WHERE key = 'last_accounted_at'").fetchone()[0]
        )
        ticks, max_id = connection.execute("SELECT count(*), max(id) FROM ticks").fetchone()
        gpu_seconds, usd = connection.execute(
            "SELECT total(gpu_seconds), total(usd) FROM spend WHERE source = 'estimate'"
        ).fetchone()
        (running_s,) = connection.execute(
            "SELECT running_s FROM worker_sessions WHERE worker_id = 'w-a'"
        ).fetchone()
        (requests,) = connection.execute("SELECT total(requests) FROM traffic").fetchone()
        (jobs,) = connection.execute("SELECT count(*) FROM jobs").fetchone()
    accounted_seconds = accounted - ORIGIN
    # Every interval was accounted by exactly one tick: none lost across 10 restarts, none counted twice.
    assert ticks == max_id == accounted_seconds / STEP_S, context
    assert gpu_seconds == accounted_seconds * sum(WORKERS.values()), context
    assert usd == gpu_seconds * USD_PER_GPU_SECOND, context
    assert running_s == accounted_seconds, context
    assert requests == jobs == ticks, context


# ---------------------------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------------------------


def test_retention_forgets_raw_rows_folds_spend_into_days_and_keeps_month_totals(ledger: Ledger) -> None:
    start = MARCH + 2 * DAY
    hours = 5 * 24
    for number in range(hours):  # one tick an hour for 5 days, each accruing to its hour
        at = start + (number + 1) * HOUR
        ledger.record_tick(
            tick(
                at,
                accounted_from=at - HOUR,
                estimates=(SpendAccrual("ep-1", at - HOUR, 0.125 * (number % 7), 60.0),),
                billed=(BilledSpend("ep-1", at - HOUR, 0.0625 * (number % 5), 55.0),),
                traffic=(TrafficCount("ep-1", "log", at, requests=1),),
                jobs=(
                    JobUpdate(f"done-{number}", "ep-1", "COMPLETED", "status", finished_at=at),
                    JobUpdate(f"stuck-{number}", "ep-1", "IN_PROGRESS", "status"),
                ),
                workers=(
                    WorkerUpdate(f"gone-{number}", "ep-1", "IDLE", ended_at=at),
                    WorkerUpdate("forever", "ep-1", "RUNNING", running_s=HOUR),
                ),
                decisions=(DecisionStep(at, "r", "a", "dry-run", "proposed", "why"),),
            )
        )
    before_totals = ledger.month_totals(MARCH)
    before_by_day = ledger.month_spend_by_day(MARCH)
    now = start + hours * HOUR  # the end of day 5 (2026-03-08 00:00)

    result = ledger.apply_retention(now, raw_retention_days=2, rollup_retention_days=30)

    cutoff = now - 2 * DAY
    assert (
        result.ticks == result.traffic == 3 * 24 - 1
    )  # older than the cutoff (the cutoff tick itself stays)
    assert result.spend_hours_rolled_up == 2 * 3 * 24  # estimate + billed, three whole days
    assert result.jobs == 3 * 24 - 1  # finished ones only: a stuck job is kept whatever its age
    assert result.worker_sessions == 3 * 24 - 1
    assert result.decisions == 0
    assert result.checkpoint is not None
    assert result.checkpoint[0] == 0
    assert ledger.month_totals(MARCH) == before_totals
    assert ledger.month_spend_by_day(MARCH) == before_by_day
    assert min(hour for _, hour, _ in ledger.month_spend_by_hour(MARCH)) == cutoff
    assert len(ledger._rows("SELECT * FROM jobs WHERE status = 'IN_PROGRESS'")) == hours
    assert [s.worker_id for s in ledger.open_worker_sessions()] == ["forever"]
    # Decisions outlive their ticks; the foreign key lets go of the deleted tick.
    oldest = ledger.recent_decisions(1000)[-1]
    assert oldest.tick_id is None
    assert ledger.recent_decisions(1)[0].tick_id == ledger.latest_tick().id  # type: ignore[union-attr]

    # A second run changes nothing; billed spend for an hour already folded cannot replace anything.
    again = ledger.apply_retention(now, raw_retention_days=2, rollup_retention_days=30)
    assert (again.ticks, again.spend_hours_rolled_up) == (0, 0)
    late = ledger.record_tick(tick(now + 1, billed=(BilledSpend("ep-1", start, 99.0),)))
    assert late.refused_billed == (BilledSpend("ep-1", start, 99.0),)
    assert ledger.month_totals(MARCH) == before_totals

    # Rollups go too, once older than their own retention.
    gone = ledger.apply_retention(now + DAY, raw_retention_days=2, rollup_retention_days=3)
    assert gone.spend_days_deleted == 2 * 3  # the three days folded first, for estimate and billed
    assert gone.decisions == 3 * 24 - 1
    assert ledger.month_spend_by_day(MARCH) == {
        key: usd for key, usd in before_by_day.items() if key[1] >= now - 2 * DAY
    }


def test_thirty_days_of_five_second_ticks_for_ten_endpoints_stay_small(
    ledger: Ledger, ledger_path: Path
) -> None:
    """Steady state: the file holds the raw window plus small rollups, whatever the age of the ledger.

    Rows are bulk-written in the shape record_tick produces (writing 518,400 ticks one by one would take
    minutes); retention runs daily, as the daemon would run it.
    """
    raw_days, rollup_days, endpoints = 3, 400, 10
    ticks_per_day, minutes_per_day = 86400 // 5, 1440
    jobs_per_endpoint_day, sessions_per_endpoint_day = 300, 24
    rng = random.Random(7)
    expected_estimate = expected_billed = 0.0
    sizes: dict[int, int] = {}
    with contextlib.closing(sqlite3.connect(ledger_path)) as bulk:
        for day in range(30):
            day_start = MARCH + day * DAY
            with bulk:
                bulk.executemany(
                    "INSERT INTO ticks (started_at, finished_at, ok, blind, error, endpoints, duration_ms)"
                    " VALUES (?, ?, 1, 0, NULL, ?, ?)",
                    (
                        (day_start + 5 * n, day_start + 5 * n + 0.35, endpoints, 350)
                        for n in range(1, ticks_per_day + 1)
                    ),
                )
                bulk.executemany(
                    "INSERT INTO traffic (endpoint_id, source, minute, requests, pings) VALUES (?, 'log', ?, ?, ?)",
                    (
                        (f"endpoint-{e:02d}", day_start + 60 * m, rng.randrange(30), rng.randrange(3))
                        for e in range(endpoints)
                        for m in range(minutes_per_day)
                    ),
                )
                spend_rows = [
                    (
                        f"endpoint-{e:02d}",
                        day_start + 3600 * h,
                        source,
                        rng.randrange(64) / 64,
                        3600.0,
                        day_start,
                    )
                    for e in range(endpoints)
                    for h in range(24)
                    for source in ("estimate", "billed")
                ]
                bulk.executemany(
                    "INSERT INTO spend (endpoint_id, hour, source, usd, gpu_seconds, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    spend_rows,
                )
                expected_estimate += sum(row[3] for row in spend_rows if row[2] == "estimate")
                expected_billed += sum(row[3] for row in spend_rows if row[2] == "billed")
                bulk.executemany(
                    "INSERT INTO jobs (job_id, endpoint_id, worker_id, status, first_seen_at, started_at,"
                    " finished_at, delay_ms, execution_ms, source)"
                    " VALUES (?, ?, ?, 'COMPLETED', ?, ?, ?, ?, ?, 'status')",
                    (
                        (
                            f"{day:02d}-{e:02d}-{j:04d}-2f0c9a1e-7b7e-4a4e-9c4c-5d0c2b2f5f00",
                            f"endpoint-{e:02d}",
                            f"worker-{e:02d}-{j % 24:02d}",
                            day_start + j * 280,
                            day_start + j * 280 + 2,
                            day_start + j * 280 + 40,
                            rng.randrange(5000),
                            rng.randrange(60000),
                        )
                        for e in range(endpoints)
                        for j in range(jobs_per_endpoint_day)
                    ),
                )
                bulk.executemany(
                    "INSERT INTO worker_sessions VALUES (?, ?, 'NVIDIA RTX A4000', ?, ?, ?, 'IDLE', 30, 1800, 300,"
                    " 0.25)",
                    (
                        (f"worker-{day:02d}-{e:02d}-{s:02d}", f"endpoint-{e:02d}", t, t + 2400, t + 2400)
                        for e in range(endpoints)
                        for s in range(sessions_per_endpoint_day)
                        for t in [day_start + s * 3600]
                    ),
                )
            result = ledger.apply_retention(
                day_start + DAY, raw_retention_days=raw_days, rollup_retention_days=rollup_days
            )
            assert result.checkpoint is not None
            assert result.checkpoint[0] == 0
            sizes[day] = ledger_path.stat().st_size + Path(f"{ledger_path}-wal").stat().st_size

    assert ledger.month_totals(MARCH) == (expected_estimate, expected_billed)

    # The bound, from what the raw window holds (retention runs once a day, so up to raw_days + 1 days of
    # raw rows exist at a time) with a generous per-row budget including index entries and page slack.
    window_days = raw_days + 1
    budget_bytes = window_days * (
        ticks_per_day * 60  # id, two REALs, four small ints: ~35 B of record
        + endpoints * minutes_per_day * 90  # traffic row (~45 B) plus its minute index
        + endpoints
        * jobs_per_endpoint_day
        * 250  # a 60-character job id in the row, the pk index and one more
        + endpoints * sessions_per_endpoint_day * 200
        + endpoints * 24 * 2 * 100  # hourly spend and its index
    )
    budget_bytes += 30 * endpoints * 2 * 100 + 256 * 1024  # daily rollups, schema and partly filled pages
    final_size = sizes[29]
    assert final_size < budget_bytes, f"{final_size} bytes > bound {budget_bytes}"
    assert (
        budget_bytes < 16 * 1024 * 1024
    )  # the bound itself is small: ~12 MiB for the busiest plausible case
    # And it does not creep: a month-old ledger is no bigger than one that just filled its raw window.
    assert final_size <= sizes[raw_days + 1] * 1.15, sizes


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_group_reader_can_read_a_stopped_daemons_ledger() -> None:
    """The TUI as another user, daemon stopped: no -wal/-shm, a directory it cannot write (measured in
    tested-recipes §5 to fail with mode=ro alone); the reader falls back to immutable=1."""
    # pytest's tmp_path sits under a 0700 directory another user cannot enter.
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
        _read_stopped_ledger_as_nobody(Path(scratch))


def _read_stopped_ledger_as_nobody(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = state / "ledger.sqlite3"
    with Ledger.open(path) as ledger:
        ledger.enqueue_alert("k1", "budget", "warning", "Budget 80 % reached", 16.0, 1_764_000_000.0)
    assert not (state / "ledger.sqlite3-wal").exists()
    tmp_path.chmod(0o755)
    state.chmod(0o755)
    path.chmod(0o644)
    nobody = pwd.getpwnam("nobody")
    # Import as root first, then drop to nobody: the repository and its venv may sit in a directory nobody
    # cannot enter (a fresh clone under mktemp -d); only the ledger's own permissions are under test here.
    code = (
        "import os; from watchdog.ledger import LedgerReader\n"
        f"os.setgroups([]); os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid})\n"
        f"r = LedgerReader.open({str(path)!r}); print([a.key for a in r.recent_alerts(5)])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['k1']"


def test_an_empty_file_or_a_directory_is_not_silently_a_new_ledger(tmp_path: Path) -> None:
    empty = tmp_path / "ledger.sqlite3"
    empty.write_bytes(b"")
    with pytest.raises(LedgerError, match="empty file"):
        Ledger.open(empty)
    folder = tmp_path / "folder.sqlite3"
    folder.mkdir()
    with pytest.raises(LedgerError, match="is a directory"):
        Ledger.open(folder)


def test_a_ledger_deleted_or_replaced_under_its_writer_is_noticed_and_reopened(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with Ledger.open(path) as ledger:
        ledger.check_file()
        path.unlink()
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(LedgerError, match="was deleted"):
            ledger.check_file()
        ledger.reopen()
        ledger.check_file()
        assert path.is_file() and ledger.schema_steps()  # a new, migrated ledger at the path
        other = tmp_path / "restored.sqlite3"
        Ledger.open(other).close()
        os.replace(other, path)
        with pytest.raises(LedgerError, match="was replaced"):
            ledger.check_file()
        path.write_bytes(b"")
        with pytest.raises(LedgerError, match="empty file"):
            ledger.reopen()
