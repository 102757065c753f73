"""The ledger's thin layer over the standard library's sqlite3: transactions and versioned schema steps.

Why it exists: ``watchdog/ledger.py`` used sqlite-utils for a thin slice only: ``Database(conn)`` with
``execute()``, ``atomic()``, ``enable_wal()`` and ``close()``, and :class:`Migrations`. Importing sqlite-utils
also loaded click, python-dateutil, pluggy and sqlite_fts4, which the daemon never used: 4.5 MiB of its
resident memory (measured 2026-11-30, RSS after the daemon's imports: 39.6 -> 35.3 MiB). This module is
that slice and nothing more, written against sqlite-utils 4.2.1 (its ``db.py`` and ``migrations.py``),
behaving the same:

- :meth:`Database.execute` commits a write that opened an implicit transaction (the sqlite3 module opens
  one before INSERT/UPDATE/DELETE/REPLACE) unless a transaction was already open; a failed statement that
  opened one rolls it back.
- :meth:`Database.atomic` is ``BEGIN`` ... ``COMMIT`` (``ROLLBACK`` on any exception, also when COMMIT
  fails); nested inside an open transaction it is a ``SAVEPOINT``, rolled back to and released on error.
- :class:`Migrations` records each applied step as a row of ``_sqlite_migrations`` written in the same
  transaction as the step itself, and a step is applied when a row with its set and name exists.

What it may not touch: the bookkeeping table. Its name, columns, index and the text of ``applied_at`` are
the ones sqlite-utils 4.2.1 writes, byte for byte, so a ledger written by an older runpod-watchdog (which
used sqlite-utils) opens here without re-running a step, and one written here opens there. Never change
them. It imports the standard library only, and nothing from ``watchdog`` (``ledger.py`` imports it).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Self, TypeVar

__all__ = ["AppliedMigration", "Database", "Migration", "Migrations", "Parameters"]

Parameters = Sequence[object] | Mapping[str, object]
"""Values for a statement's ``?`` (a sequence) or ``:name`` (a mapping) placeholders."""

_TRANSACTION_CONTROL_KEYWORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})


def _first_keyword(sql: str) -> str:
    """The statement's first keyword, upper-cased, after whitespace, ``--``/``/* */`` comments, bare ``;``
    and a byte order mark; ``""`` if there is none (sqlite-utils' ``_first_keyword``)."""
    i, n = 0, len(sql)
    while i < n:
        if sql[i].isspace() or sql[i] in {";", "\ufeff"}:
            i += 1
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            if newline == -1:
                return ""
            i = newline + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end == -1:
                return ""
            i = end + 2
        else:
            break
    j = i
    while j < n and (sql[j].isalpha() or sql[j] == "_"):
        j += 1
    return sql[i:j].upper()


class Database:
    """A sqlite3 connection with sqlite-utils' transaction semantics (see the module's docstring).

    The connection must use the sqlite3 module's default (legacy) transaction handling, as sqlite-utils
    requires; opening runs ``PRAGMA recursive_triggers=on`` as ``sqlite_utils.Database(conn)`` did.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        autocommit: object = getattr(conn, "autocommit", None)  # Python 3.12+
        legacy: object = getattr(sqlite3, "LEGACY_TRANSACTION_CONTROL", -1)
        if autocommit is not None and autocommit != legacy:
            raise ValueError("connections created with autocommit=True or autocommit=False are not supported")
        self.conn = conn
        """The underlying connection (for PRAGMAs and reads that must bypass :meth:`execute`)."""
        self.execute("PRAGMA recursive_triggers=on;")

    def execute(self, sql: str, parameters: Parameters | None = None) -> sqlite3.Cursor:
        """Run one statement. A write is committed at once unless a transaction is open, in which case it
        becomes part of it."""
        was_in_transaction = self.conn.in_transaction
        try:
            cursor = self.conn.execute(sql) if parameters is None else self.conn.execute(sql, parameters)
        except Exception:
            if not was_in_transaction and self.conn.in_transaction:
                # The failed statement opened an implicit transaction nothing would commit.
                self.conn.execute("ROLLBACK")
            raise
        if (
            not was_in_transaction
            and self.conn.in_transaction
            and cursor.description is None
            and _first_keyword(sql) not in _TRANSACTION_CONTROL_KEYWORDS
        ):
            self.conn.execute("COMMIT")  # the statement opened an implicit transaction
        return cursor

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Self]:
        """One transaction around the block: committed if it ends normally, rolled back on any exception.
        Inside an open transaction, a savepoint instead (only the block's changes are undone on error)."""
        if self.conn.in_transaction:
            savepoint = f"ledger_{os.urandom(16).hex()}"
            self.conn.execute(f"SAVEPOINT {savepoint};")
            try:
                yield self
            except BaseException:
                # An error such as a RAISE(ROLLBACK) trigger can destroy the whole transaction, savepoints
                # included: cleaning up anyway would mask the original exception with "no such savepoint".
                if self.conn.in_transaction:
                    self.conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint};")
                    self.conn.execute(f"RELEASE SAVEPOINT {savepoint};")
                raise
            else:
                self.conn.execute(f"RELEASE SAVEPOINT {savepoint};")
        else:
            self.conn.execute("BEGIN")
            try:
                yield self
            except BaseException:
                self.rollback()  # a no-op if the error already ended the transaction
                raise
            else:
                try:
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.rollback()
                    raise

    def rollback(self) -> None:
        """Roll back the open transaction, if there is one."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def enable_wal(self) -> None:
        """Switch the file to write-ahead logging (persistent); refused inside a transaction, which changing
        the journal mode would end."""
        row: tuple[object, ...] = self.execute("PRAGMA journal_mode;").fetchone()
        if row[0] == "wal":
            return
        if self.conn.in_transaction:
            raise sqlite3.OperationalError("enable_wal() cannot be used while a transaction is open")
        old_isolation_level = self.conn.isolation_level
        try:
            self.conn.isolation_level = None
            self.execute("PRAGMA journal_mode=wal;")
        finally:
            self.conn.isolation_level = old_isolation_level

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


_MIGRATIONS_TABLE = "_sqlite_migrations"
# The bookkeeping table and its index as sqlite-utils 4.2.1 creates them: the same text in sqlite_master.
_CREATE_TABLE = (
    f'CREATE TABLE "{_MIGRATIONS_TABLE}" (\n'
    '   "id" INTEGER PRIMARY KEY,\n'
    '   "migration_set" TEXT,\n'
    '   "name" TEXT,\n'
    '   "applied_at" TEXT\n'
    ")"
)
_CREATE_INDEX = (
    f'CREATE UNIQUE INDEX "idx_{_MIGRATIONS_TABLE}_migration_set_name"\n'
    f'    ON "{_MIGRATIONS_TABLE}" ("migration_set", "name")'
)

MigrationStep = Callable[[Database], None]
"""A schema step: runs its statements through ``db.execute`` (never ``executescript``, which commits)."""
_StepT = TypeVar("_StepT", bound=MigrationStep)


@dataclass(frozen=True)
class Migration:
    """A registered step."""

    name: str
    fn: MigrationStep
    transactional: bool = True


@dataclass(frozen=True)
class AppliedMigration:
    """A row of the bookkeeping table."""

    name: str
    applied_at: str
    """When it was applied: ``str(datetime.now(timezone.utc))``, e.g. ``2026-07-04 12:00:00.123456+00:00``."""


class Migrations:
    """A named, ordered set of schema steps, each applied once (sqlite-utils' ``Migrations``, without
    ``stop_before``).

    The bookkeeping table, exactly as sqlite-utils 4.2.1 creates it, holds one row per applied step (``id``
    counts up, ``migration_set`` is this set's name, ``applied_at`` text in UTC); a step counts as applied
    when a row with this set and its name exists. Steps apply in registration order; each one and its row
    are one transaction, so a crash leaves it either applied and recorded or neither.
    """

    migrations_table = _MIGRATIONS_TABLE

    def __init__(self, name: str) -> None:
        self.name = name
        self._migrations: list[Migration] = []

    def __call__(self, *, name: str | None = None, transactional: bool = True) -> Callable[[_StepT], _StepT]:
        """Decorator registering a step, after the ones registered before it. ``transactional=False`` is for
        a step that cannot run in a transaction (``VACUUM``): it and its row are then written separately."""

        def register(fn: _StepT) -> _StepT:
            step_name = name or fn.__name__
            if any(m.name == step_name for m in self._migrations):
                raise ValueError(f"Migration '{step_name}' is already registered in set '{self.name}'")
            self._migrations.append(Migration(step_name, fn, transactional))
            return fn

        return register

    @property
    def names(self) -> tuple[str, ...]:
        """The registered steps' names, in order."""
        return tuple(m.name for m in self._migrations)

    def applied(self, db: Database) -> list[AppliedMigration]:
        """The steps of this set recorded in ``db``, in the order they were applied. Read-only."""
        if not _table_exists(db, self.migrations_table):
            return []
        rows: list[tuple[str, str]] = db.execute(
            f'select name, applied_at from "{self.migrations_table}" where migration_set = ? order by rowid',
            [self.name],
        ).fetchall()
        return [AppliedMigration(name=name, applied_at=applied_at) for name, applied_at in rows]

    def pending(self, db: Database) -> list[Migration]:
        """The registered steps not yet applied to ``db``, in order. Read-only."""
        done = {m.name for m in self.applied(db)}
        return [m for m in self._migrations if m.name not in done]

    def apply(self, db: Database) -> None:
        """Apply the pending steps in order, each in a transaction together with its row; a step that raises
        is rolled back, leaves no row and stays pending (the exception propagates)."""
        self.ensure_migrations_table(db)
        for migration in self.pending(db):
            if migration.transactional:
                with db.atomic():
                    migration.fn(db)
                    self._record_applied(db, migration.name)
            else:
                migration.fn(db)
                self._record_applied(db, migration.name)

    def _record_applied(self, db: Database, name: str) -> None:
        db.execute(
            f'INSERT INTO "{self.migrations_table}" ("applied_at", "migration_set", "name") VALUES (?, ?, ?)',
            [str(datetime.datetime.now(datetime.UTC)), self.name, name],
        )

    def ensure_migrations_table(self, db: Database) -> None:
        """Create the bookkeeping table and its unique index if missing (one transaction); convert one keyed
        on ``(migration_set, name)`` (the sqlite-migrate plugin's, which sqlite-utils also converts) to the
        ``id`` key, keeping its rows in their order."""
        table = self.migrations_table
        if not _table_exists(db, table):
            with db.atomic():
                db.execute(_CREATE_TABLE)
                db.execute(_CREATE_INDEX)
        elif _primary_key(db, table) != ["id"]:
            with db.atomic():
                db.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_old"')
                db.execute(_CREATE_TABLE)
                db.execute(
                    f'INSERT INTO "{table}" ("id", "migration_set", "name", "applied_at")'
                    f' SELECT rowid, "migration_set", "name", "applied_at" FROM "{table}_old" ORDER BY rowid'
                )
                db.execute(f'DROP TABLE "{table}_old"')
                db.execute(_CREATE_INDEX)

    def __repr__(self) -> str:
        return f"<Migrations '{self.name}': [{', '.join(self.names)}]>"


def _table_exists(db: Database, name: str) -> bool:
    row: tuple[str] | None = db.execute(
        "select name from sqlite_master where type = 'table' and name = ?", [name]
    ).fetchone()
    return row is not None


def _primary_key(db: Database, table: str) -> list[str]:
    """The primary key's columns in declaration order; ``["rowid"]`` if it has none (as sqlite-utils)."""
    # PRAGMA table_info: (cid, name, type, notnull, dflt_value, pk), pk = position in the key or 0
    columns: list[tuple[int, str, str, int, object, int]] = db.execute(
        f'PRAGMA table_info("{table}")'
    ).fetchall()
    key = sorted((pk, name) for _cid, name, _type, _notnull, _default, pk in columns if pk)
    return [name for _pk, name in key] or ["rowid"]
