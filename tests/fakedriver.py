"""A scripted fake DB-API driver, for the engine's unit and property tests only.

The fake server keeps committed rows and each connection's open transaction; a fault
scheduled on the server strikes the next command: ``before_send`` (the command never
arrives: error 2006), ``after_send`` (the command is applied, the reply is lost: 2013),
``lost_in_flight`` (the connection dies before the command is applied: 2013, which the
client cannot tell from ``after_send``), or ``kill_idle`` (the server closes the
connection while it is idle, which its socket shows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resilient_dbapi.adapters import AdapterBase, Liveness
from resilient_dbapi.error_kinds import MYSQL_ERRORS


class FakeError(Exception):
    pass


class FakeOperationalError(FakeError):
    pass


class FakeInterfaceError(FakeError):
    pass


class FakeServer:
    def __init__(self) -> None:
        self.committed: list[str] = []
        self.fault: str | None = None
        self.connects = 0
        self.refuse_connects = 0
        self.connections: list[FakeConnection] = []

    def connect(self, autocommit: bool = False) -> FakeConnection:
        self.connects += 1
        if self.refuse_connects:
            self.refuse_connects -= 1
            raise FakeOperationalError(2003, "Can't connect to server")
        conn = FakeConnection(self, autocommit)
        self.connections.append(conn)
        return conn

    def kill_idle(self) -> None:
        for conn in self.connections:
            if conn.alive:
                conn.die()
                conn.socket_closed = True


class FakeConnection:
    def __init__(self, server: FakeServer, autocommit: bool) -> None:
        self.server = server
        self.alive = True
        self.socket_closed = False
        self.autocommit_mode = autocommit
        self.pending: list[str] = []
        self.in_trans = False

    def die(self) -> None:
        self.alive = False
        self.pending = []  # the server rolls back an open transaction
        self.in_trans = False

    def command(self, effect: Callable[[], Any]) -> Any:
        if not self.alive:
            if self.socket_closed:
                raise FakeOperationalError(2013, "Lost connection to server during query")
            raise FakeInterfaceError(0, "")
        fault, self.server.fault = self.server.fault, None
        if fault == "before_send":
            self.die()
            raise FakeOperationalError(2006, "Server has gone away")
        if fault == "lost_in_flight":
            self.die()
            raise FakeOperationalError(2013, "Lost connection to server during query")
        result = effect()
        if fault == "after_send":
            self.die()
            raise FakeOperationalError(2013, "Lost connection to server during query")
        return result

    # -- DB-API ------------------------------------------------------------------------

    def cursor(self, cursor_class: Any = None) -> FakeCursor:
        return FakeCursor(self)

    def commit(self) -> None:
        def effect() -> None:
            self.server.committed.extend(self.pending)
            self.pending = []
            self.in_trans = False

        self.command(effect)

    def rollback(self) -> None:
        def effect() -> None:
            self.pending = []
            self.in_trans = False

        self.command(effect)

    def begin(self) -> None:
        def effect() -> None:  # like the server: BEGIN commits an open transaction first
            self.server.committed.extend(self.pending)
            self.pending = []
            self.in_trans = True

        self.command(effect)

    def close(self) -> None:
        self.alive = False

    def insert(self, uid: str) -> None:
        if self.autocommit_mode and not self.in_trans:
            self.server.committed.append(uid)
        else:
            self.pending.append(uid)
            self.in_trans = True

    def count(self) -> int:
        return len(self.server.committed) + len(self.pending)


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.rows: list[tuple[Any, ...]] = []
        self.arraysize = 1
        self.rowcount = -1
        self.description = None

    def execute(self, query: str, args: Any = None) -> int:
        conn = self.conn
        if query.startswith("INSERT"):
            return int(conn.command(lambda: conn.insert(args[0])) or 1)
        if query.startswith("SELECT"):
            self.rows = [(conn.command(conn.count),)]
            return 1
        raise ValueError(f"the fake driver does not know {query!r}")

    def fetchone(self) -> Any:
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self.rows = self.rows, []
        return rows

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        return self.fetchall()

    def close(self) -> None:
        pass


class FakeAdapter(AdapterBase):
    name = "fake"
    errors = MYSQL_ERRORS
    operational_error = FakeOperationalError
    interface_error = FakeInterfaceError
    programming_error = FakeError
    gone_code = 2006
    transactional_only = True  # the fake server has no MyISAM: its rollbacks are whole

    def owns(self, raw: object) -> bool:
        return isinstance(raw, FakeConnection)

    def owns_error(self, exc: BaseException) -> bool:
        return isinstance(exc, FakeError)

    def probe(self, raw: FakeConnection) -> Callable[[], Liveness]:
        return lambda: Liveness.DEAD if raw.socket_closed or not raw.alive else Liveness.ALIVE

    def ping(self, raw: FakeConnection, timeout: float) -> None:
        raw.command(lambda: None)

    def status(self, raw: FakeConnection) -> tuple[bool, bool]:
        return raw.in_trans, raw.autocommit_mode

    def busy(self, raw: FakeConnection) -> bool:
        return False

    def discard(self, raw: FakeConnection) -> None:
        raw.alive = False

    def error_code(self, exc: BaseException) -> int | None:
        if not isinstance(exc, FakeError) or not exc.args:
            return None
        code = exc.args[0]
        return code if isinstance(code, int) else None

    def never_sent(self, exc: BaseException) -> bool:
        return self.error_code(exc) in (0, 2006)

    def unbuffered(self, cursor: Any) -> bool:
        return False

    def wait_timeout(self, raw: FakeConnection) -> float | None:
        return None

    def completion_chains(self, raw: FakeConnection) -> bool:
        return False

    def table_rolls_back(self, raw: FakeConnection, database: str, name: str) -> bool:
        return False

    def last_insert_id(self, raw: FakeConnection) -> int | None:
        return None

    def execute(self, raw: FakeConnection, query: str, args: Any) -> None:
        FakeCursor(raw).execute(query, args)

    def set_autocommit(self, raw: FakeConnection, value: bool) -> None:
        raw.autocommit_mode = value

    def select_db(self, raw: FakeConnection, db: str) -> None:
        pass

    def describe(self, raw: FakeConnection) -> str:
        return "fake"


# -- the same driver with an asyncio surface (like aiomysql's) ------------------------


class AsyncFakeConnection(FakeConnection):
    async def cursor(self, *cursor_classes: Any) -> AsyncFakeCursor:  # type: ignore[override]
        return AsyncFakeCursor(self)

    async def commit(self) -> None:  # type: ignore[override]
        FakeConnection.commit(self)

    async def rollback(self) -> None:  # type: ignore[override]
        FakeConnection.rollback(self)

    async def begin(self) -> None:  # type: ignore[override]
        FakeConnection.begin(self)


class AsyncFakeCursor(FakeCursor):
    async def execute(self, query: str, args: Any = None) -> int:  # type: ignore[override]
        return FakeCursor.execute(self, query, args)

    async def fetchone(self) -> Any:
        return FakeCursor.fetchone(self)

    async def fetchall(self) -> list[tuple[Any, ...]]:  # type: ignore[override]
        return FakeCursor.fetchall(self)

    async def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:  # type: ignore[override]
        return FakeCursor.fetchall(self)

    async def close(self) -> None:  # type: ignore[override]
        pass


async def async_connect(server: FakeServer, autocommit: bool = False) -> AsyncFakeConnection:
    conn = server.connect(autocommit)
    twin = AsyncFakeConnection(server, autocommit)
    server.connections[server.connections.index(conn)] = twin
    return twin


class AsyncFakeAdapter(FakeAdapter):
    name = "fake-asyncio"

    def owns(self, raw: object) -> bool:
        return isinstance(raw, AsyncFakeConnection)

    async def ping(self, raw: FakeConnection, timeout: float) -> None:  # type: ignore[override]
        FakeAdapter.ping(self, raw, timeout)

    async def wait_timeout(self, raw: FakeConnection) -> float | None:  # type: ignore[override]
        return None

    async def completion_chains(self, raw: FakeConnection) -> bool:  # type: ignore[override]
        return False

    async def table_rolls_back(  # type: ignore[override]
        self, raw: FakeConnection, database: str, name: str
    ) -> bool:
        return False

    async def last_insert_id(self, raw: FakeConnection) -> int | None:  # type: ignore[override]
        return None

    async def execute(self, raw: FakeConnection, query: str, args: Any) -> None:  # type: ignore[override]
        FakeAdapter.execute(self, raw, query, args)

    async def set_autocommit(self, raw: FakeConnection, value: bool) -> None:  # type: ignore[override]
        raw.autocommit_mode = value

    async def select_db(self, raw: FakeConnection, db: str) -> None:  # type: ignore[override]
        pass
