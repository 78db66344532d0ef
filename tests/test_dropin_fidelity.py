"""Drop-in fidelity: what a caller of ``pymysql``/``aiomysql`` reads through the drop-ins
is what the driver itself would show, everywhere but resilience. Each test runs the
same steps on the plain driver first, so the expectation is the driver's own."""

from __future__ import annotations

import asyncio
import functools
import socket
import sqlite3
import time
import warnings
from typing import Any

import aiomysql
import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import MaxAge, PingOnCheckout, RetryOnError, aio
from resilient_dbapi import aiomysql as resilient_aiomysql
from resilient_dbapi import pymysql as resilient_pymysql

from .conftest import kill, rows
from .drivers import Driver
from .test_aio import aio_kwargs, run

pytestmark = pytest.mark.server

_DRIVERS = [pytest.param(pymysql, id="pymysql"), pytest.param(resilient_pymysql, id="drop-in")]


def _what_a_caller_reads(module: Any, db: dict[str, Any]) -> dict[str, Any]:
    conn = module.connect(**db)
    seen: dict[str, Any] = {
        "insert_id after connect": conn.insert_id(),
        "affected_rows after connect": conn.affected_rows(),
        "auth plugin": conn._auth_plugin_name,
        "has a socket": conn._sock is not None,
    }
    cur = conn.cursor()
    cur.execute("SELECT %s", ("x",))
    seen["executed"] = cur._executed  # Django's last_executed_query(), DEBUG's queries
    seen["iter is the cursor"] = iter(cur) is cur
    seen["rows by iteration"] = list(cur)
    cur.execute("INSERT INTO t (uid) VALUES (%s)", ("fidelity",))
    seen["insert_id"] = conn.insert_id() > 0
    cur.execute("SET SESSION wait_timeout = 600")  # the proxy reads the new value
    seen["affected_rows after a SET"] = conn.affected_rows()
    cur.close()
    with pytest.raises(pymysql.err.ProgrammingError) as closed:
        cur.execute("SELECT 1")
    seen["closed cursor"] = type(closed.value)
    conn.rollback()
    conn.close()
    return seen


def test_a_caller_reads_through_the_drop_in_what_pymysql_shows(db: dict[str, Any]) -> None:
    assert _what_a_caller_reads(resilient_pymysql, db) == _what_a_caller_reads(pymysql, db)


def test_a_caller_reads_through_the_drop_in_what_aiomysql_shows(db: dict[str, Any]) -> None:
    async def reads(connect: Any) -> dict[str, Any]:
        conn = await connect(**aio_kwargs(db))
        seen: dict[str, Any] = {"insert_id after connect": conn.insert_id()}
        cur = await conn.cursor()
        await cur.execute("SELECT %s", ("x",))
        seen["last executed"] = cur._last_executed
        seen["rows"] = await cur.fetchall()
        await cur.close()
        with pytest.raises(pymysql.err.ProgrammingError):
            await cur.execute("SELECT 1")
        conn.close()
        return seen

    async def main() -> None:
        assert await reads(resilient_aiomysql.connect) == await reads(aiomysql.connect)

    run(main())


def test_the_drop_in_takes_policies_by_name_as_djangos_options_pass_them(
    db: dict[str, Any],
) -> None:
    seen: list[object] = []
    conn = resilient_pymysql.connect(policies="web", listeners=[seen.append], **db)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchall() == ((1,),)
    assert seen  # the listener was given to the connection (its Connected event)
    conn.close()


def _resolver_says(code: int, calls: list[str]) -> Any:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "db.example.invalid":
            calls.append(host)
            raise socket.gaierror(code, "resolver")
        return real(host, *args, **kwargs)

    return getaddrinfo


def test_a_host_name_that_does_not_exist_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """No waiting makes an unknown name known: plain PyMySQL fails at once, and so does
    the proxy, with PyMySQL's own error (the documented connect retry is for servers
    that are down, not for a misspelt host)."""
    calls: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", _resolver_says(socket.EAI_NONAME, calls))
    started = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as info:
        resilient_dbapi.connect(pymysql.connect, host="db.example.invalid", user="app")
    assert info.value.args[0] == 2003
    assert calls == ["db.example.invalid"]
    deferred = resilient_dbapi.connect(
        pymysql.connect, host="db.example.invalid", user="app", defer_connect=True
    )
    with pytest.raises(pymysql.err.OperationalError):
        deferred.connect()  # no name was ever reached through it: not waited for either
    assert calls == ["db.example.invalid"] * 2
    assert not deferred.open  # as PyMySQL's after a failed connect()
    with pytest.raises(pymysql.err.InterfaceError, match="defer_connect"):
        deferred.cursor()
    assert time.monotonic() - started < 5  # not the 30 s connect deadline

    async def main() -> None:
        with pytest.raises(pymysql.err.OperationalError):
            await aio.connect(aiomysql.connect, host="db.example.invalid", user="app")

    run(main())
    assert calls == ["db.example.invalid"] * 3


def test_a_resolver_that_says_try_again_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", _resolver_says(socket.EAI_AGAIN, calls))
    policies = [RetryOnError(attempts=3, backoff=0.01, max_backoff=0.01)]
    with pytest.raises(pymysql.err.OperationalError):
        resilient_dbapi.connect(
            pymysql.connect, host="db.example.invalid", user="app", policies=policies
        )
    assert calls == ["db.example.invalid"] * 3


def test_a_closed_cursor_raises_what_each_driver_raises(
    driver: Driver, dbkw: dict[str, Any]
) -> None:
    """PyMySQL, mysqlclient, mysql-connector: ProgrammingError; psycopg: InterfaceError."""

    def raised(conn: Any) -> type[BaseException]:
        cur = conn.cursor()
        cur.close()
        with pytest.raises(Exception) as info:
            cur.execute("SELECT 1")
        conn.close()
        return type(info.value)

    plain = raised(driver.connect(**dbkw))
    resilient = raised(resilient_dbapi.connect(driver.connect, **dbkw))
    assert plain.__module__ != "builtins"  # the driver's own error class
    assert issubclass(resilient, plain)


def test_connections_and_cursors_are_instances_of_the_drivers_classes(
    db: dict[str, Any],
) -> None:
    """As through a ``wrapt`` proxy: ``isinstance`` sees the driver's classes (and the
    caller's cursor class); ``type()`` still says what the object is."""
    conn = resilient_pymysql.connect(**db)
    cur = conn.cursor(pymysql.cursors.DictCursor)
    assert isinstance(conn, pymysql.connections.Connection)
    assert isinstance(conn, resilient_dbapi.ResilientConnection)
    assert isinstance(cur, pymysql.cursors.DictCursor)
    assert type(conn).__name__ == "ResilientConnection"
    with pytest.raises(TypeError, match="does not wrap another"):
        resilient_dbapi.connect(lambda: conn)
    conn.close()

    async def main() -> None:
        aconn = await resilient_aiomysql.connect(**aio_kwargs(db))
        assert isinstance(aconn, aiomysql.Connection)
        acur = await aconn.cursor(aiomysql.DictCursor)
        assert isinstance(acur, aiomysql.DictCursor)
        aconn.close()

    run(main())


def _kill(server: Any, thread_id: int) -> None:
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute("KILL %s", (thread_id,))
    admin.close()
    time.sleep(0.2)


def test_protection_and_tracing_both_hold_under_opentelemetry(
    server: Any, db: dict[str, Any]
) -> None:
    """With OpenTelemetry's PyMySQL instrumentation, ``pymysql.connect`` returns its
    tracing proxy. The proxy sees the driver under it: a write after the server killed
    the idle connection is sent once on a new one (plain PyMySQL raises), every
    statement of the caller's is traced, and none of the proxy's own questions is."""
    from opentelemetry.instrumentation.pymysql import PyMySQLInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = PyMySQLInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        plain = pymysql.connect(autocommit=True, **db)
        assert hasattr(plain, "__wrapped__")  # the tracing proxy
        _kill(server, plain.thread_id())
        with pytest.raises(pymysql.err.OperationalError):
            plain.cursor().execute("INSERT INTO t (uid) VALUES ('plain')")
        plain.close()
        spans.clear()

        conn = resilient_dbapi.connect(pymysql.connect, autocommit=True, **db)
        assert "PyMySQLAdapter" in repr(conn._adapter)  # not the generic fallback
        cur = conn.cursor()
        conn.begin()  # the driver's methods are seen under the wrapper too
        cur.execute("INSERT INTO t (uid) VALUES (%s)", ("rolled back",))
        conn.rollback()
        spans.clear()
        cur.execute("SELECT uid FROM t")
        _kill(server, conn.thread_id())
        cur.execute("INSERT INTO t (uid) VALUES (%s)", ("traced",))
        assert conn.reconnects == 1
        conn.close()
    finally:
        instrumentor.uninstrument()
    assert rows(server, db, "SELECT uid FROM t") == [("traced",)]
    traced = [span.attributes["db.statement"] for span in spans.get_finished_spans()]
    traced.remove("KILL %s")  # the test's own admin connection, traced too
    assert traced == ["SELECT uid FROM t", "INSERT INTO t (uid) VALUES (%s)"]


def test_a_proxy_that_hides_what_it_wraps_gets_the_generic_adapter_with_a_warning(
    db: dict[str, Any],
) -> None:
    class Disguised:
        """Claims PyMySQL's class, as a wrapping proxy does, but hides the object."""

        def __init__(self, raw: Any) -> None:
            self._hidden = raw

        @property
        def __class__(self) -> type:  # type: ignore[override]
            return pymysql.connections.Connection

        def cursor(self) -> Any:
            return self._hidden.cursor()

        def commit(self) -> None:
            self._hidden.commit()

        def rollback(self) -> None:
            self._hidden.rollback()

        def close(self) -> None:
            self._hidden.close()

    with pytest.warns(RuntimeWarning, match="does not say what it wraps"):
        conn = resilient_dbapi.connect(lambda: Disguised(pymysql.connect(**db)))
    assert "GenericAdapter" in repr(conn._adapter)
    conn.close()


def test_a_name_the_resolver_forgets_for_a_moment_after_a_connection_is_waited_for(
    server: Any, db: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker's and Kubernetes' DNS drop a restarting server's name: once the name was
    reached, "no such name" is a passing state, retried like a refused port."""
    conn = resilient_dbapi.connect(pymysql.connect, **{**db, "host": "localhost"})
    cur = conn.cursor()
    cur.execute("SELECT 1")
    real = socket.getaddrinfo
    refused: list[str] = []

    def forgetful(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost" and len(refused) < 2:
            refused.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", forgetful)
    _kill(server, conn.thread_id())
    cur.execute("SELECT 2")
    assert cur.fetchall() == ((2,),)
    assert refused == ["localhost", "localhost"] and conn.reconnects == 1
    conn.close()


def test_driver_private_methods_are_not_passed_through_nor_private_data_set(
    db: dict[str, Any],
) -> None:
    """``conn._execute_command(...)`` would send past every safety rule (a write the
    proxy never saw, lost silently with its connection): only data passes through, and
    it is set on ``.raw``, where it cannot hide the driver's later values."""
    conn = resilient_pymysql.connect(**db)
    assert not hasattr(conn, "_execute_command") and not hasattr(conn, "_read_query_result")
    assert conn._sock is conn.raw._sock
    with pytest.raises(AttributeError, match=r"set it on \.raw"):
        conn._sock = None
    conn.close()


def test_patching_the_drivers_module_with_the_drop_in_connects(
    db: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pymysql.connect = resilient_dbapi.pymysql.connect`` (and aiomysql's), a common way
    to make code that imports the driver resilient: the drop-in then calls the driver's
    own connect, not itself without end."""
    monkeypatch.setattr(pymysql, "connect", resilient_pymysql.connect)
    monkeypatch.setattr(aiomysql, "connect", resilient_aiomysql.connect)
    conn = pymysql.connect(**db)
    assert isinstance(conn, resilient_dbapi.ResilientConnection)
    conn.close()
    monkeypatch.setattr(pymysql, "connect", functools.partial(resilient_pymysql.connect))
    conn = pymysql.connect(**db)
    assert isinstance(conn, resilient_dbapi.ResilientConnection)
    conn.close()

    async def main() -> None:
        aconn = await aiomysql.connect(**aio_kwargs(db))
        assert isinstance(aconn, aio.AsyncResilientConnection)
        aconn.close()

    run(main())


def _sessions(server: Any) -> set[int]:
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute("SELECT id FROM information_schema.processlist")
        found = {row[0] for row in cur.fetchall()}
    admin.close()
    return found


def test_ensure_closed_from_another_task_ends_a_session_left_mid_stream(
    server: Any, db: dict[str, Any]
) -> None:
    """A task reads part of an unbuffered result in a transaction and stops; another task
    (a test fixture's teardown, a shutdown handler) calls ``ensure_closed()``. As with
    aiomysql, the session ends: its locks go with it, and DDL on the table proceeds."""
    rows(server, db, "INSERT INTO t (uid) VALUES ('a'), ('b'), ('c')")

    ended: list[int] = []

    async def main(connect: Any) -> None:
        conn = await connect(**aio_kwargs(db))
        thread_id = conn.thread_id()
        ended.append(thread_id)

        async def read_part() -> None:
            cur = await conn.cursor(aiomysql.SSCursor)
            await cur.execute("SELECT uid FROM t")
            await cur.fetchone()

        await asyncio.create_task(read_part())
        await asyncio.create_task(conn.ensure_closed())
        assert conn.closed
        deadline = time.monotonic() + 5
        while thread_id in _sessions(server) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert thread_id not in _sessions(server)

    try:
        run(main(aiomysql.connect))
        run(main(resilient_aiomysql.connect))
    finally:
        for thread_id in set(ended) & _sessions(server):
            _kill(server, thread_id)  # or the database's teardown would wait for its lock
    admin = server.admin(database=db["database"])
    with admin.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = 5")
        cur.execute("ALTER TABLE t ADD COLUMN w INT")  # no metadata lock held
    admin.close()


def test_ddl_with_autocommit_off_leaves_no_transaction_open(
    server: Any, db: dict[str, Any]
) -> None:
    """DDL commits as it ends. With autocommit off (aiomysql's default) the connection
    reports no transaction after it, as the driver does: aiomysql's pool keeps it (a
    pool made the tables and shrank by one), and a read after the connection was killed
    is answered on a new one instead of raising a lost transaction."""

    async def after_ddl(module: Any) -> tuple[bool, int]:
        conn = await module.connect(**aio_kwargs(db))
        cur = await conn.cursor()
        await cur.execute("CREATE TABLE ddl_t (id INT)")
        await cur.execute("DROP TABLE ddl_t")
        open_after = conn.get_transaction_status()
        conn.close()
        pool = await module.create_pool(minsize=3, **aio_kwargs(db))
        async with pool.acquire() as pooled, pooled.cursor() as pcur:
            await pcur.execute("CREATE TABLE ddl_p (id INT)")
            await pcur.execute("DROP TABLE ddl_p")
        size = pool.freesize
        pool.close()
        await pool.wait_closed()
        return open_after, size

    assert run(after_ddl(resilient_aiomysql)) == run(after_ddl(aiomysql)) == (False, 3)

    conn = resilient_pymysql.connect(**db)  # autocommit off
    cur = conn.cursor()
    cur.execute("CREATE TABLE ddl_k (id INT)")
    _kill(server, conn.thread_id())
    cur.execute("SELECT COUNT(*) FROM t")  # nothing was open: sent on a new connection
    assert cur.fetchone() == (0,)
    assert conn.reconnects == 1
    conn.close()


def test_ping_after_close_reopens_where_the_driver_would(db: dict[str, Any]) -> None:
    """aiomysql's ``ping()`` reopens a closed connection (its default ``reconnect=True``);
    PyMySQL's does with ``reconnect=True`` only. Through the drop-ins too, with the
    connection's settings (autocommit off) on the new session and its cursors usable."""

    async def reopened(connect: Any) -> tuple[Any, ...]:
        conn = await connect(**aio_kwargs(db))
        await conn.autocommit(False)
        cur = await conn.cursor()
        await conn.ensure_closed()
        await conn.ping()
        await cur.execute("SELECT @@autocommit")
        seen = (conn.closed, await cur.fetchone())
        conn.close()
        await conn.ping()
        seen += (conn.closed,)
        conn.close()
        return seen

    assert run(reopened(resilient_aiomysql.connect)) == run(reopened(aiomysql.connect))
    assert run(reopened(resilient_aiomysql.connect)) == (False, (0,), False)

    for module in (pymysql, resilient_pymysql):
        conn = module.connect(**db)
        conn.autocommit(False)
        conn.close()
        with pytest.raises(pymysql.err.Error):
            conn.ping()  # PyMySQL >= 1.2: no reconnect unless asked
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # PyMySQL's, on reconnect=
            conn.ping(reconnect=True)
        cur = conn.cursor()
        cur.execute("SELECT @@autocommit")
        assert cur.fetchone() == (0,), module
        conn.close()


def test_reopening_after_close_names_a_transaction_that_held_writes(
    server: Any, db: dict[str, Any]
) -> None:
    """A task wrote in a transaction; another closed the connection (a pool's terminate,
    a shutdown); the first then pings it open again, as aiomysql code does before a
    statement. The write went with the closed session: the reopened connection says so
    until rollback(), instead of letting the task commit the rest as if it were there.
    Session state it held (a user variable) is not reported lost: it was closed on
    purpose."""

    async def main() -> None:
        conn = await resilient_aiomysql.connect(**aio_kwargs(db))  # autocommit off
        cur = await conn.cursor()
        await cur.execute("INSERT INTO t (uid) VALUES ('first')")
        conn.close()
        with pytest.raises(resilient_dbapi.TransactionLostError):
            await conn.ping()
        assert conn.stats.transactions_lost == 1  # the event, logged and counted
        await conn.rollback()
        await cur.execute("INSERT INTO t (uid) VALUES ('second')")
        await conn.commit()
        await cur.execute("SET @mark = 1")
        await conn.commit()
        await conn.ensure_closed()
        await conn.ping()  # no SessionLostError: the caller closed that session
        await cur.execute("SELECT @mark")
        assert await cur.fetchone() == (None,)
        conn.close()

    run(main())
    assert rows(server, db, "SELECT uid FROM t") == [("second",)]


def _server_socket(db: dict[str, Any]) -> socket.socket:
    return socket.create_connection((db["host"], db["port"]), timeout=10)


@pytest.mark.parametrize("module", _DRIVERS)
def test_defer_connect_waits_for_connect_as_pymysql_does(module: Any, db: dict[str, Any]) -> None:
    """``defer_connect=True`` makes a connection that ``connect()`` opens, on a socket
    of the caller's or by the connect arguments; ``connect()`` after ``close()`` opens a
    new session with the settings made before ``close()`` (autocommit off). The drop-in
    does each as PyMySQL does."""
    events: list[Any] = []
    extra = {"listeners": [events.append]} if module is resilient_pymysql else {}
    conn = module.connect(defer_connect=True, **db, **extra)
    assert not conn.open
    sock = _server_socket(db)
    conn.connect(sock)
    assert conn.open
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    conn.close()
    sock.close()

    conn = module.connect(defer_connect=True, **db, **extra)
    conn.connect()
    conn.autocommit(False)
    conn.close()
    conn.connect()
    cur = conn.cursor()
    cur.execute("SELECT @@autocommit")
    assert cur.fetchone() == (0,)
    conn.close()
    if module is resilient_pymysql:
        # A write left uncommitted went with close(): as after ping(reconnect=True), the
        # new session names it until rollback() (PyMySQL's starts afresh, silently).
        conn = module.connect(**db, **extra)
        conn.cursor().execute("INSERT INTO t (uid) VALUES ('uncommitted')")
        conn.close()
        with pytest.raises(resilient_dbapi.TransactionLostError):
            conn.connect()
        conn.rollback()
        conn.connect()
        assert conn.open
        conn.close()
        kinds = [type(e).__name__ for e in events if type(e).__name__.endswith("onnected")]
        assert kinds == ["Connected", "Connected", "Reconnected", "Connected", "Reconnected"]


def test_the_first_session_of_a_deferred_connection_has_its_own_history(
    db: dict[str, Any],
) -> None:
    """The session connect() opens is the first, not a replacement: a question about
    its history (LAST_INSERT_ID(), SHOW WARNINGS) is answered, as PyMySQL answers it."""
    for opens in (lambda conn: conn.connect(), lambda conn: conn.connect(_server_socket(db))):
        conn = resilient_pymysql.connect(defer_connect=True, **db)
        opens(conn)
        cur = conn.cursor()
        cur.execute("SELECT LAST_INSERT_ID()")
        assert cur.fetchone() == (0,)
        conn.close()
    assert resilient_dbapi.connect(sqlite3.connect, ":memory:").cursor()  # no defer_connect
    with pytest.raises(TypeError):  # defer_connect=False is the driver's, as without a proxy
        resilient_dbapi.connect(sqlite3.connect, ":memory:", defer_connect=False)


def test_a_failed_connect_leaves_the_connection_closed(db: dict[str, Any]) -> None:
    """A handshake that fails on the caller's socket (a server that hangs up at once)
    leaves the connection not open, as PyMySQL's: nothing connects behind the caller's
    back by the connect arguments; connect() again opens it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    conn = resilient_pymysql.connect(defer_connect=True, **db)
    hang_up = socket.create_connection(listener.getsockname(), timeout=10)
    listener.accept()[0].close()
    listener.close()
    with pytest.raises(pymysql.err.OperationalError):
        conn.connect(hang_up)
    assert not conn.open
    with pytest.raises(pymysql.err.InterfaceError):
        conn.cursor()
    assert conn.reconnects == 0 and conn.stats.connects == 0
    conn.connect(_server_socket(db))
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,) and conn.stats.connects == 1
    conn.close()


def test_connect_refuses_an_open_connection(db: dict[str, Any]) -> None:
    conn = resilient_pymysql.connect(**db)
    thread_id = conn.thread_id()
    with pytest.raises(pymysql.err.ProgrammingError, match="open already"):
        conn.connect()  # PyMySQL's would open another and leave this one's socket open
    assert conn.thread_id() == thread_id
    conn.close()


def test_a_connection_on_the_callers_socket_is_never_replaced_elsewhere(
    server: Any, db: dict[str, Any]
) -> None:
    """A session opened with ``connect(sock)`` ran on a way to the server that only the
    caller knows (a tunnel, a proxy). When it is lost, the connect arguments may lead
    to another server, or none: nothing is opened with them, nothing sent again. The
    loss raises the driver's error, later statements its "gone away" (2006) at once,
    without a connect retry, until the caller connects again."""
    events: list[Any] = []
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there: a reconnect by the arguments would be refused
    elsewhere = {**db, "port": port}
    policies = [PingOnCheckout(), MaxAge(seconds=0.5, jitter=0), RetryOnError()]
    conn = resilient_pymysql.connect(
        defer_connect=True, listeners=[events.append], policies=policies, **elsewhere
    )
    sock = _server_socket(db)
    conn.connect(sock)
    cur = conn.cursor()
    thread_id = conn.thread_id()
    time.sleep(0.6)  # past its max age: a session on the caller's socket is kept
    cur.execute("SELECT CONNECTION_ID()")
    assert cur.fetchone() == (thread_id,)
    cur.execute("INSERT INTO t (uid) VALUES ('on the socket')")
    conn.commit()
    kill(server, conn.thread_id())
    with pytest.raises(pymysql.err.OperationalError) as lost:
        cur.execute("SELECT COUNT(*) FROM t")  # a read: any other connection resends it
    assert lost.value.args[0] in (2006, 2013)  # the driver's own error, as without a proxy
    for _ in range(2):
        with pytest.raises(pymysql.err.OperationalError) as gone:
            cur.execute("SELECT COUNT(*) FROM t")
        assert gone.value.args[0] == 2006 and "connect(sock)" in gone.value.args[1]
    assert not [e for e in events if type(e).__name__ in ("Retrying", "Reconnected")]
    assert conn.reconnects == 0
    sock.close()
    conn.connect(_server_socket(db))  # the caller's way again
    cur = conn.cursor()
    cur.execute("SELECT uid FROM t")
    assert cur.fetchall() == (("on the socket",),)
    conn.close()
