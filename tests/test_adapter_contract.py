"""A third party's driver, supported through the public adapter contract alone: a toy
DB-API driver (over a shared sqlite3 file, so a new connection sees what an old one
wrote) and its adapter, registered with ``resilient_dbapi.adapters.register``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import resilient_dbapi
from resilient_dbapi import ErrorKind, ErrorTable, OutcomeUnknownError
from resilient_dbapi.adapters import AdapterBase, Liveness, register
from resilient_dbapi.hosts import Role

LOST = 2013  # the toy driver's "lost connection" code


class ToyError(Exception):
    pass


class ToyOperationalError(ToyError):
    pass


class ToyInterfaceError(ToyError):
    pass


class ToyProgrammingError(ToyError):
    pass


class ToyConnection:
    """A DB-API connection of the toy driver; ``lose_next_reply()`` makes the next
    statement run on the server and its reply never arrive, and the connection die."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self.alive = True
        self._lose_reply = False

    def lose_next_reply(self) -> None:
        self._lose_reply = True

    def cursor(self) -> ToyCursor:
        return ToyCursor(self)

    def commit(self) -> None:
        self._check()
        if self._db.in_transaction:
            self._db.execute("COMMIT")

    def rollback(self) -> None:
        self._check()
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        self.alive = False
        self._db.close()

    def _check(self) -> None:
        if not self.alive:
            raise ToyOperationalError(LOST, "lost connection")

    def run(self, sql: str, args: Any) -> sqlite3.Cursor:
        self._check()
        result = self._db.execute(sql, args or ())
        if self._lose_reply:
            self._lose_reply = False
            self.alive = False
            raise ToyOperationalError(LOST, "lost connection during query")
        return result


class ToyCursor:
    def __init__(self, conn: ToyConnection) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self.rowcount = -1
        self.description = None
        self.arraysize = 1

    def execute(self, sql: str, args: Any = None) -> None:
        result = self._conn.run(sql, args)
        self._rows = result.fetchall()
        self.rowcount = result.rowcount
        self.description = result.description

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def fetchmany(self, size: int = 1) -> list[Any]:
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def close(self) -> None:
        self._rows = []


class ToyAdapter(AdapterBase):
    """The toy driver's adapter: the hooks AdapterBase has no default for."""

    name = "toy"
    errors = ErrorTable({LOST: ErrorKind.DEAD})
    operational_error = ToyOperationalError
    interface_error = ToyInterfaceError
    programming_error = ToyProgrammingError
    gone_code = LOST

    def owns(self, raw: object) -> bool:
        return isinstance(raw, ToyConnection)

    def owns_error(self, exc: BaseException) -> bool:
        return isinstance(exc, ToyError)

    def probe(self, raw: Any) -> Callable[[], Liveness]:
        return lambda: Liveness.ALIVE if raw.alive else Liveness.DEAD

    def status(self, raw: Any) -> tuple[bool, bool]:
        return raw._db.in_transaction, True

    def error_code(self, exc: BaseException) -> int | None:
        return exc.args[0] if isinstance(exc, ToyError) and exc.args else None

    def never_sent(self, exc: BaseException) -> bool:
        return False  # the toy driver never proves it: the weaker claim

    def ping(self, raw: Any, timeout: float) -> None:
        raw.run("SELECT 1", None)

    def wait_timeout(self, raw: Any) -> float | None:
        return None

    def completion_chains(self, raw: Any) -> bool:
        return False  # sqlite3 has no completion_type

    def table_rolls_back(self, raw: Any, database: str, name: str) -> bool:
        return False  # not asked: every sqlite3 table rolls back

    def last_insert_id(self, raw: Any) -> int | None:
        return None  # no such history: a question about it is refused on a new session

    def execute(self, raw: Any, query: str, args: Any) -> None:
        raw.run(query, args)

    def set_autocommit(self, raw: Any, value: bool) -> None:
        raise ToyProgrammingError(0, "the toy driver is always in autocommit mode")

    def select_db(self, raw: Any, db: str) -> None:
        raise ToyProgrammingError(0, "the toy driver has one database")


@pytest.fixture(scope="module", autouse=True)
def _registered() -> Iterator[None]:
    register(ToyAdapter())
    yield


@pytest.fixture
def path(tmp_path: Path) -> Path:
    db = tmp_path / "toy.db"
    with sqlite3.connect(db) as setup:
        setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    return db


def _count(path: Path, v: str) -> int:
    with sqlite3.connect(path) as check:
        return int(check.execute("SELECT COUNT(*) FROM t WHERE v = ?", (v,)).fetchone()[0])


def test_a_read_lost_with_its_connection_is_sent_again_on_a_new_one(path: Path) -> None:
    conn = resilient_dbapi.connect(ToyConnection, path)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (v) VALUES ('a')")
    conn.raw.lose_next_reply()
    cur.execute("SELECT v FROM t")
    assert cur.fetchall() == [("a",)]
    assert conn.reconnects == 1


def test_the_same_read_breaks_the_toy_driver_alone(path: Path) -> None:
    raw = ToyConnection(path)
    raw.lose_next_reply()
    with pytest.raises(ToyOperationalError):
        raw.cursor().execute("SELECT v FROM t")


def test_a_write_lost_after_sending_is_never_sent_twice(path: Path) -> None:
    conn = resilient_dbapi.connect(ToyConnection, path)
    cur = conn.cursor()
    conn.raw.lose_next_reply()
    with pytest.raises(OutcomeUnknownError) as raised:
        cur.execute("INSERT INTO t (v) VALUES ('once')")
    assert isinstance(raised.value, ToyOperationalError)  # the driver's own class...
    assert raised.value.args[0] == LOST  # ...and code
    assert _count(path, "once") == 1  # applied once, never again
    cur.execute("SELECT COUNT(*) FROM t")  # the connection goes on, on a new one
    assert cur.fetchone() == (1,)


def test_an_adapter_missing_hooks_is_refused_with_what_it_lacks() -> None:
    class Half:
        name = "half"

        def owns(self, raw: object) -> bool:
            return False

    with pytest.raises(TypeError, match=r"Half is not an adapter: it lacks .*never_sent.*ping"):
        register(Half())  # type: ignore[arg-type]


def test_an_adapter_that_reads_the_role_says_so_by_itself() -> None:
    # target= refuses an adapter that cannot read the server's role: one that implements
    # role() (a third party's, or a shipped one) must never be refused for nothing.
    import importlib

    from resilient_dbapi.adapters import _BUILTIN

    class WithRole(ToyAdapter):
        def role(self, raw: Any) -> Role:
            return Role.WRITABLE

    assert WithRole().reads_role and not ToyAdapter().reads_role
    for entries in _BUILTIN.values():
        for module, name in entries:
            klass = getattr(importlib.import_module(f"resilient_dbapi.adapters.{module}"), name)
            own = any("role" in vars(k) for k in klass.__mro__ if k is not AdapterBase)
            assert klass().reads_role is own, name
