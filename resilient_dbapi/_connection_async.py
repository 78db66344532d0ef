"""The resilient connection: a PEP 249 proxy driven by the engine.

``_connection_async.py`` (asyncio) is the source of ``connection.py`` (sync), which
``tools/async_to_sync.py`` generates from it; a test checks that it is current. Code
under ``if True:  # ASYNC`` is the asyncio version, its ``else:`` branch the sync one.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from . import adapters
from ._arguments import (
    check_callable,
    check_connection,
    check_on_connect,
    connect_name,
    resolve_policies,
)
from ._connection_base import ConnectionBase, check_tls
from ._connector import ConnectorBase, WrongRole, check_failover, wrong_connect_error
from ._cursor_async import AsyncResilientCursor
from ._error_factories import (
    closed_error,
    lost_again_error,
    session_lost_before_send,
)
from ._forwarding import forwarding_class
from .adapters import AsyncAdapter, Liveness
from .engine import Engine, Op, Reason, Verdict
from .error_kinds import Code, ErrorTable
from .events import (
    Connected,
    Listener,
    Observer,
    Pinged,
    Reconnected,
    check_listeners,
)
from .hosts import Host, HostMemory, Target
from .policies import Policy
from .statements import (
    BEGIN_OP,
    COMMIT_OP,
    READ_OP,
    ROLLBACK_OP,
    SESSION_OP,
    WRITE_OP,
    Statement,
    StatementKind,
    statement,
)

if True:  # ASYNC
    import asyncio

__all__ = ["AsyncResilientConnection", "connect", "creator"]

T = TypeVar("T")
_ALIVE = Liveness.ALIVE
_READ = StatementKind.READ
_monotonic = time.monotonic


class _Connector(ConnectorBase):
    """Opens physical connections, retrying what the policies allow."""

    __slots__ = ()

    async def open(
        self,
        engine: Engine,
        setup: Callable[[Any], Awaitable[T]],
        observer: Observer,
        where: str,
    ) -> tuple[Any, T, int]:
        """A new driver connection, what ``setup(raw)`` made of it, and the rounds it
        took. A round tries each host once (the connect arguments' own host without
        ``hosts=``); rounds are retried on transient errors as the policies allow."""
        started = _monotonic()
        attempt = 0
        outcomes: dict[Host, str] = {}
        while True:
            attempt += 1
            saw_wrong_role = False
            for host in self.plan(_monotonic()):
                raw = None
                try:
                    if True:  # ASYNC
                        opening = self.driver_connect(*self.args, **self.arguments(host))
                        if not inspect.isawaitable(opening):
                            raise wrong_connect_error(opening, want_awaitable=True)
                        raw = await opening
                    else:
                        raw = self.driver_connect(*self.args, **self.arguments(host))
                        if inspect.isawaitable(raw):
                            raise wrong_connect_error(raw, want_awaitable=False)
                    made = await setup(raw)
                    self.arrived(host)
                    return raw, made, attempt
                except BaseException as exc:
                    if raw is not None:  # a half-made connection: let it go
                        with contextlib.suppress(Exception):
                            raw.close()
                    if not isinstance(exc, Exception):
                        raise  # interrupted: never retried
                    if not self.passed_over(host, exc, engine, _monotonic(), observer, outcomes):
                        raise
                    saw_wrong_role = saw_wrong_role or isinstance(exc, WrongRole)
                    last = exc
            elapsed = _monotonic() - started
            wait = self.retry_wait(last, engine, attempt, elapsed, observer, where, saw_wrong_role)
            if wait is None:
                error = self.gave_up(last, outcomes, attempt, elapsed)
                if error is last:
                    raise last
                raise error from last
            if True:  # ASYNC
                await asyncio.sleep(wait)
            else:
                time.sleep(wait)


class AsyncResilientConnection(ConnectionBase):
    """A DB-API 2.0 connection that replaces its physical connection when that is safe.

    Make one with :func:`connect`. Driver-specific attributes (``select_db``,
    ``insert_id``, ``thread_id``, ``escape`` ...) pass through to the current driver
    connection, which :attr:`raw` returns.
    """

    _adapter: AsyncAdapter
    _connector: _Connector

    # -- plumbing -----------------------------------------------------------------

    async def _setup(self, raw: Any) -> float | None:
        """Make a new driver connection mean what the old one meant; its wait_timeout."""
        return await _prepare(self._adapter, raw, self._on_connect, self._engine)

    async def _replace(self, reason: Reason, code: Code | None = None) -> None:
        """Replace a dead connection, unless its session held state no replay rebuilds:
        then say so once (SessionLostError), and the next statement gets a new session."""
        if self._engine.unrestorable:
            self._abandon(reason)
            raise session_lost_before_send(
                self._adapter, self._engine, self._observer, self._where(), reason, code
            )
        await self._reconnect(reason, code)

    async def _note(self, stmt: Statement, query: Any, args: Any, cursor: Any = None) -> None:
        """After a statement other than a plain read: the engine journals session
        settings and remembers session state no replay can rebuild."""
        engine = self._engine
        if stmt.kind is StatementKind.SESSION:
            if stmt.parts and not args and cursor is not None:
                # The driver read the first result only: a later setting's error would
                # surface at the next command, after a bad setting was journaled for
                # every reconnect. Read them all now; journal what the server took.
                done, error = await self._drain(cursor._raw)
                if error is not None:
                    engine.settings_made(stmt, query, args, done)
                    raise error
            if engine.settings_made(stmt, query, args):
                try:
                    wait_timeout = await self._adapter.wait_timeout(self._raw)
                except Exception as exc:
                    self._failed(exc, Op.FETCH, READ_OP, 0)  # records the loss and raises
                    raise
                except BaseException:
                    self._interrupted(Op.FETCH, READ_OP)
                    raise
                engine.wait_timeout_changed(wait_timeout, _monotonic())
        elif stmt.kind is StatementKind.WRITE:
            engine.state_made(stmt.effects)

    async def _drain(self, raw_cursor: Any) -> tuple[int, Exception | None]:
        """Read the remaining results of a several-statement string: how many statements
        succeeded, and the error of the first that did not (None when all did)."""
        done = 1
        try:
            while await raw_cursor.nextset():
                done += 1
        except Exception as exc:
            if self._adapter.error_code(exc) is None:
                return done, exc
            try:
                self._failed(exc, Op.FETCH, READ_OP, 0)  # records a lost connection; raises
            except Exception as judged:
                return done, judged
        return done, None

    async def _reconnect(self, reason: Reason, code: Code | None = None) -> None:
        self._abandon(reason)
        started = _monotonic()
        if reason is Reason.READ_ONLY:
            self._connector.turned_read_only(started, self._observer, code)
        where = self._where()
        raw, wait_timeout, attempts = await self._connector.open(
            self._engine, self._setup, self._observer, where
        )
        self._install(raw, wait_timeout)
        self._observer.emit(
            Reconnected(where, reason.value, code, attempts, _monotonic() - started)
        )

    async def _start_stream(self, what: str, cursor: Any) -> Any:
        """Before a driver operation that streams past the proxy (psycopg's COPY): the
        checks a statement gets, and from now on it counts as a write (with autocommit
        off, a connection lost before the COMMIT is then a lost transaction, never a
        commit of nothing). Returns ``cursor``'s driver cursor to stream through."""
        if self._closed:
            raise closed_error(self._adapter)
        engine = self._engine
        if engine.lost:
            raise lost_again_error(self._adapter, engine)
        self._enter(what)
        try:
            if not engine.stale:
                engine.driver_transaction(self._status(self._raw)[0])
            if not engine.txn_writes:
                await self._checkout()
            engine.done(WRITE_OP, *self._status(self._raw), _monotonic())
            return await cursor._current()
        finally:
            self._leave()

    async def _checkout(self) -> None:
        """Before sending outside a transaction: make sure the connection is usable."""
        engine = self._engine
        if not engine.stale and self._status(self._raw)[0]:
            # A transaction the driver opened without the proxy seeing it (psycopg's
            # transaction(), mysql-connector's start_transaction()): never replaced
            # silently; a failure of the statement reports it lost.
            engine.driver_transaction(True)
            return
        now = _monotonic()
        if engine.stale or now >= engine.next_check_at:
            plan = engine.checkout(now)
            if plan.reconnect is not None:
                await self._replace(plan.reconnect, engine.stale_code if engine.stale else None)
                return
            timeout = plan.ping_timeout
        else:
            timeout = None
        liveness = self._probe()
        if liveness is not _ALIVE and self._adapter.busy(self._raw):
            return  # an unbuffered result is being read: the bytes are rows, not news
        if liveness is Liveness.DEAD:
            await self._replace(Reason.LIVENESS)
            return
        if liveness is Liveness.UNSURE and timeout is None:
            timeout = engine.ping.timeout if engine.ping else 5.0
        if timeout is not None:
            started = _monotonic()
            try:
                await self._adapter.ping(self._raw, timeout)
            except Exception as exc:
                code = self._adapter.error_code(exc)
                if code is None:
                    raise
                self._observer.emit(Pinged(self._where(), False, _monotonic() - started))
                await self._replace(Reason.PING, code)
            except BaseException:
                # Interrupted mid-ping (cancelled): the reply may still be on its way.
                self._abandon(Reason.PING)
                raise
            else:
                now = _monotonic()
                engine.used(now)
                self._observer.emit(Pinged(self._where(), True, now - started))

    async def _execute(self, cursor: Any, stmt: Statement, query: Any, args: Any) -> Any:
        """``cursor.execute``: the hot path. A statement on a connection that needs no
        check (open, used recently, alive, or inside a transaction with writes) goes
        straight to the driver; any other goes through :meth:`_run`, as does a resend."""
        if not self._claim(False):
            self._enter("execute")  # raises ConcurrentUseError
        self._in_flight = "execute"
        try:
            engine = self._engine
            if self._driver_transactions and not engine.stale and not self._closed:
                # Read before any check: a probe may consume the news of the connection's
                # death, and with it the driver's memory of the transaction.
                engine.driver_transaction(self._status(self._raw)[0])
            # One clock read per statement: idle time counts from the statement's start,
            # which at worst costs a needless ping after a statement longer than `idle`.
            now = _monotonic()
            if (
                self._closed
                or engine.lost
                or (
                    not engine.txn_writes
                    and (
                        engine.stale
                        or now >= engine.next_check_at
                        or (
                            now - engine.last_used >= self._skip_recent
                            and self._probe() is not _ALIVE
                        )
                        or (self._gone is not None and self._gone())
                    )
                )
            ):
                result = await self._run(Op.EXECUTE, stmt, _send_execute, cursor, query, args)
            else:
                try:
                    if cursor._gen == self._gen:
                        result = await cursor._raw.execute(query, args)
                    else:
                        result = await (await cursor._current()).execute(query, args)
                except Exception as exc:
                    verdict = await self._judge(exc, Op.EXECUTE, stmt, 0)
                    if verdict is Verdict.RECOVERED:
                        return 0  # a ROLLBACK or an empty COMMIT: done by the connection's end
                    result = await self._run(
                        Op.EXECUTE, stmt, _send_execute, cursor, query, args, resends=1
                    )
                except BaseException:
                    self._interrupted(Op.EXECUTE, stmt)
                    raise
                else:
                    in_trans, autocommit = self._status(self._raw)
                    if stmt.kind is _READ and not in_trans and not engine.txn_writes:
                        engine.used(now)  # all done() would change for a plain read
                        return result
                    engine.done(stmt, in_trans, autocommit, now)
            if stmt.kind is not _READ:
                await self._note(stmt, query, args, cursor)
            return result
        finally:
            self._release()

    async def _run(
        self,
        op: Op,
        stmt: Statement,
        send: Callable[..., Awaitable[T]],
        *args: Any,
        resends: int = 0,
    ) -> T:
        """Send one operation with the checkout before it and the safety rules after (a
        recovered failure returns None: nothing was lost)."""
        if self._closed:
            raise closed_error(self._adapter)
        engine = self._engine
        if engine.lost:
            raise lost_again_error(self._adapter, engine)
        while True:
            if self._driver_transactions and not engine.stale:
                engine.driver_transaction(self._status(self._raw)[0])
            if not engine.txn_writes:
                await self._checkout()
            try:
                result = await send(self, *args)
            except Exception as exc:
                if await self._judge(exc, op, stmt, resends) is Verdict.RECOVERED:
                    return None  # type: ignore[return-value]
                resends += 1
                continue
            except BaseException:
                self._interrupted(op, stmt)
                raise
            engine.done(stmt, *self._status(self._raw), _monotonic())
            return result

    async def _judge(self, exc: Exception, op: Op, stmt: Statement, resends: int) -> Verdict:
        """The safety rules on a failed operation, asking the server first whether it
        turned read-only when the engine needs to know: returns RESEND or RECOVERED,
        raises anything else."""
        read_only = False
        code = self._adapter.error_code(exc)
        if code is not None and self._engine.asks_role(code):
            read_only = await self._turned_read_only(op, stmt)
        return self._failed(exc, op, stmt, resends, read_only)

    async def _turned_read_only(self, op: Op, stmt: Statement) -> bool:
        """Whether the server that refused a write is read-only now (a failover demoted
        it), asked on the same connection. Another cause of the same code
        (``--secure-file-priv``'s 1290, a transaction the caller made READ ONLY) leaves
        the error to the caller as it is."""
        adapter = self._adapter
        try:
            return bool(await adapter.read_only(self._raw))
        except Exception as asked:
            # Gone meanwhile: the refusal still stands, and the next host's role is checked.
            return self._engine.is_dead(adapter.error_code(asked))
        except BaseException:
            self._interrupted(op, stmt)  # the question may still be on its way
            raise

    # -- PEP 249 ------------------------------------------------------------------

    if True:  # ASYNC

        def cursor(self, *cursors: Any) -> _CursorOpener:
            """A cursor: ``await`` it or use ``async with``; ``cursors`` are driver cursor
            classes, as in ``aiomysql``."""
            if self._closed:
                raise closed_error(self._adapter)
            return _CursorOpener(self, cursors)

    else:

        def cursor(self, *args: Any, **kwargs: Any) -> AsyncResilientCursor:
            """A :class:`ResilientCursor`; the arguments are the driver's (a cursor class
            for PyMySQL, ``row_factory=`` for psycopg ...)."""
            if self._closed:
                raise closed_error(self._adapter)
            try:
                return AsyncResilientCursor.create(self, args, kwargs)
            except Exception as exc:
                if self._adapter.error_code(exc) is None:
                    raise
            # Some drivers ask the server for a cursor (mysql-connector pings first): a
            # dead connection is replaced as for a read, when that is safe.
            self._enter("cursor")
            try:
                return self._run(Op.EXECUTE, READ_OP, AsyncResilientCursor.create, args, kwargs)
            finally:
                self._leave()

    async def commit(self) -> None:
        self._enter("commit")
        try:
            await self._finish(Op.COMMIT, COMMIT_OP)
        finally:
            self._leave()

    async def rollback(self) -> None:
        self._enter("rollback")
        try:
            if self._closed:
                raise closed_error(self._adapter)
            engine = self._engine
            if not engine.rollback_needs_sending():
                return
            # The connection lives (or nothing was lost): roll back for real, and only
            # then acknowledge a loss (the server refused a COMMIT).
            try:
                await self._finish(Op.ROLLBACK, ROLLBACK_OP)
            except BaseException:
                engine.rollback_failed()
                raise
            engine.rolled_back()
        finally:
            self._leave()

    async def _finish(self, op: Op, stmt: Statement) -> None:
        if self._closed:
            raise closed_error(self._adapter)
        engine = self._engine
        if engine.lost and op is Op.COMMIT:
            raise lost_again_error(self._adapter, engine)
        if engine.stale:
            engine.rolled_back()  # nothing can be open on a connection already given up
            return
        raw = self._raw
        try:
            await (raw.commit() if op is Op.COMMIT else raw.rollback())
        except Exception as exc:
            if await self._judge(exc, op, stmt, 0) is not Verdict.RECOVERED:
                raise exc from None  # RESEND: never the engine's verdict for these
            return  # nothing was lost
        except BaseException:
            self._interrupted(op, stmt)
            raise
        engine.done(stmt, *self._status(raw), _monotonic())

    def close(self) -> None:
        """Close the connection; closing twice is harmless."""
        if self._closed:
            return
        if True:  # ASYNC
            if self._guard.locked():
                # In use by another task: abort it, as aiomysql's close() does (its pool's
                # terminate() relies on it). The operation in flight fails, under the rules.
                self._closed = True
                self._abandon(Reason.ERROR)
                return
        self._enter("close")
        try:
            self._closed = True
            raw = self._raw
            if self._engine.stale:
                self._adapter.discard(raw)
                return
            try:
                raw.close()
            except Exception:  # the server may have gone first; the socket is closed anyway
                self._adapter.discard(raw)
        finally:
            self._leave()

    if True:  # ASYNC

        async def ensure_closed(self) -> None:
            """Say goodbye to the server (COM_QUIT), then close, as ``aiomysql`` does."""
            if self._closed:
                return
            if not self._engine.stale:
                self._enter("close")
                try:
                    await self._raw.ensure_closed()
                except Exception:  # closed below all the same
                    self._adapter.discard(self._raw)
                finally:
                    self._leave()
            self.close()

        async def _revive(self) -> None:
            """Replace a physical connection already given up, before making a cursor."""
            self._enter("cursor")
            try:
                engine = self._engine
                if engine.stale and not self._closed:
                    await self._replace(engine.stale_reason, engine.stale_code)
            finally:
                self._leave()

        def expire(self) -> None:
            """Give the physical connection up: the next statement gets a new one (for a
            pool that expires its free connections)."""
            if not self._closed and not self._guard.locked():
                self._abandon(Reason.MAX_AGE)

        @property
        def closed(self) -> bool:
            """True once :meth:`close` was called: a dropped physical connection is
            replaced, not closed (``aiomysql``'s pool reads this)."""
            return self._closed

        def get_transaction_status(self) -> bool:
            """Whether a transaction is open, or was lost and not rolled back yet."""
            engine = self._engine
            return engine.lost or engine.txn_writes or self._status(self._raw)[0]

    async def ping(self, reconnect: object = None) -> None:
        """Check the connection with a round trip, replacing it when that is safe.

        ``reconnect`` is accepted for driver compatibility and ignored: the policies
        decide. Raises if the connection is dead inside a transaction with writes.
        """
        timeout = self._engine.ping.timeout if self._engine.ping else 5.0
        self._enter("ping")
        try:
            await self._run(Op.EXECUTE, READ_OP, _send_ping, timeout)
        finally:
            self._leave()

    async def begin(self) -> None:
        self._enter("begin")
        try:
            await self._run(Op.EXECUTE, BEGIN_OP, _send_begin)
        finally:
            self._leave()

    async def autocommit(self, value: bool) -> None:
        """Set autocommit; the setting is re-applied to every new physical connection."""
        value = bool(value)
        self._enter("autocommit")
        try:
            # Turning autocommit on commits an open transaction. Should the connection die
            # with nothing written, the next connection gets the setting all the same.
            if value:
                await self._run(Op.COMMIT, COMMIT_OP, _send_autocommit, value)
            else:
                await self._run(Op.EXECUTE, READ_OP, _send_autocommit, value)
            # Journaled once it took effect: a refused setting must not poison reconnects.
            self._engine.record("set autocommit", ("autocommit", value))
        finally:
            self._leave()

    async def select_db(self, db: str) -> None:
        """Change the default database; re-applied to every new physical connection."""
        self._enter("select_db")
        try:
            await self._run(Op.EXECUTE, READ_OP, _send_select_db, db)
            self._engine.record("use", ("select_db", db))  # only once it took effect
        finally:
            self._leave()

    # -- driver methods that send: guarded and tracked like execute() ---------------

    async def query(self, sql: Any, unbuffered: bool = False) -> Any:
        """The driver's ``query()``, under the same rules as ``cursor.execute()``."""
        stmt = statement(sql)
        self._enter("query")
        try:
            result = await self._run(Op.EXECUTE, stmt, _send_query, sql, unbuffered)
            if stmt.kind is not _READ:
                await self._note(stmt, sql, None)
            return result
        finally:
            self._leave()

    async def next_result(self, unbuffered: bool = False) -> Any:
        """The driver's ``next_result()``: reads the next result of a multi-result query."""
        self._enter("next_result")
        raw = self._raw
        try:
            return await (raw.next_result(unbuffered) if unbuffered else raw.next_result())
        except Exception as exc:
            self._failed(exc, Op.FETCH, READ_OP, 0)
            raise  # a fetch is never sent again
        except BaseException:
            self._interrupted(Op.FETCH, READ_OP)
            raise
        finally:
            self._leave()

    async def show_warnings(self) -> Any:
        self._enter("show_warnings")
        try:
            return await self._run(Op.EXECUTE, READ_OP, _send_call, "show_warnings", ())
        finally:
            self._leave()

    async def kill(self, thread_id: int) -> Any:
        """``KILL`` another connection (idempotent: sent again if the connection drops)."""
        self._enter("kill")
        try:
            return await self._run(Op.EXECUTE, SESSION_OP, _send_call, "kill", (thread_id,))
        finally:
            self._leave()

    async def set_character_set(self, charset: str, collation: str | None = None) -> None:
        """PyMySQL's ``set_character_set()``; re-applied to every new connection."""
        await self._set_names("set_character_set", (charset, collation))

    async def set_charset(self, charset: str) -> None:
        """The driver's ``set_charset()``; re-applied to every new connection."""
        await self._set_names("set_charset", (charset,))

    async def _set_names(self, method: str, args: tuple[Any, ...]) -> None:
        self._enter(method)
        try:
            await self._run(Op.EXECUTE, SESSION_OP, _send_call, method, args)
            self._engine.record("set names", ("call", (method, args)))  # once it took effect
        finally:
            self._leave()

    async def __aenter__(self) -> AsyncResilientConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


if True:  # ASYNC

    class _CursorOpener:
        """What ``cursor()`` returns: awaitable, and an async context manager that closes
        the cursor on exit (SQLAlchemy's asyncio adapter calls ``__aenter__``)."""

        __slots__ = ("_classes", "_conn", "_cursor")

        def __init__(self, conn: AsyncResilientConnection, classes: tuple[Any, ...]) -> None:
            self._conn = conn
            self._classes = classes
            self._cursor: AsyncResilientCursor | None = None

        def __await__(self) -> Any:
            return self._open().__await__()

        async def __aenter__(self) -> AsyncResilientCursor:
            self._cursor = await self._open()
            return self._cursor

        async def _open(self) -> AsyncResilientCursor:
            conn = self._conn
            if conn._engine.stale:
                await conn._revive()  # aiomysql makes no cursor on a closed connection
            return await AsyncResilientCursor.create(conn, self._classes, {})

        async def __aexit__(self, *exc_info: object) -> None:
            if self._cursor is not None:
                await self._cursor.close()


async def _prepare(
    adapter: AsyncAdapter, raw: Any, on_connect: tuple[str, ...], engine: Engine
) -> float | None:
    """Run ``on_connect`` and replay the journal on a new driver connection; return the
    session's wait_timeout when the policies follow it."""
    adapter.adopt(raw)  # before any statement
    check_tls(adapter, raw, engine)
    failover = engine.failover
    if failover is not None and failover.target is not Target.ANY:
        read_only = await adapter.read_only(raw)
        if not failover.target.accepts(read_only):
            raise WrongRole(adapter, read_only)
    for sql in on_connect:
        await adapter.execute(raw, sql, None)
    for method, payload in engine.journal.values():
        if method == "execute":
            await adapter.execute(raw, *payload)
        elif method == "autocommit":
            await adapter.set_autocommit(raw, payload)
        elif method == "select_db":
            await adapter.select_db(raw, payload)
        elif method == "setattr":
            setattr(raw, *payload)
        else:  # a driver method that set session state, called again with its arguments
            name, args = payload
            await getattr(raw, name)(*args)
    if not engine.wants_wait_timeout:
        return None
    if engine.reuses_wait_timeout:
        return engine.wait_timeout
    return await adapter.wait_timeout(raw)


async def _send_execute(conn: AsyncResilientConnection, cursor: Any, query: Any, args: Any) -> Any:
    return await (await cursor._current()).execute(query, args)


async def _send_query(conn: AsyncResilientConnection, sql: Any, unbuffered: bool) -> Any:
    if unbuffered:
        return await conn._raw.query(sql, unbuffered)
    return await conn._raw.query(sql)  # mysqlclient's query() takes the statement alone


async def _send_call(conn: AsyncResilientConnection, method: str, args: tuple[Any, ...]) -> Any:
    return await getattr(conn._raw, method)(*args)


async def _send_ping(conn: AsyncResilientConnection, timeout: float) -> None:
    started = _monotonic()
    try:
        await conn._adapter.ping(conn._raw, timeout)
    except Exception:
        conn._observer.emit(Pinged(conn._where(), False, _monotonic() - started))
        raise
    conn._observer.emit(Pinged(conn._where(), True, _monotonic() - started))


async def _send_begin(conn: AsyncResilientConnection) -> None:
    await conn._raw.begin()


async def _send_autocommit(conn: AsyncResilientConnection, value: bool) -> None:
    await conn._adapter.set_autocommit(conn._raw, value)


async def _send_select_db(conn: AsyncResilientConnection, db: str) -> None:
    await conn._adapter.select_db(conn._raw, db)


# -- making connections -------------------------------------------------------------


async def connect(
    driver_connect: Callable[..., Any],
    *args: Any,
    policies: Sequence[Policy] | str | None = None,
    on_connect: Sequence[str] | None = None,
    listeners: Sequence[Listener] | None = None,
    hosts: Any = None,
    target: str | None = None,
    **kwargs: Any,
) -> AsyncResilientConnection:
    """Open a resilient connection.

    ``driver_connect(*args, **kwargs)`` is called for the first connection and for every
    replacement, with the same arguments. ``policies=None`` means the defaults
    (:func:`resilient_dbapi.policies.default_policies`); a string names a profile.
    ``on_connect`` statements run on every new physical connection, before the session
    journal is replayed. ``listeners`` are called with each :mod:`~resilient_dbapi.events`
    event of this connection.

    ``hosts`` (``[(host, port), ...]``, or ``"db1:3306,db2:3306"``) lists several servers,
    passed to the driver as ``host=`` and ``port=``: the connection uses the first whose
    role suits ``target`` (``"primary"``, the default: writable; ``"replica"``: read-only;
    ``"any"``), and moves on when its host is unreachable or turns read-only.
    """
    check_callable(driver_connect)
    return await _open(
        driver_connect,
        args,
        kwargs,
        resolve_policies(policies),
        check_on_connect(on_connect),
        check_listeners(listeners),
        check_failover(hosts, target, kwargs),
    )


async def _open(
    driver_connect: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    policies: list[Policy],
    statements: tuple[str, ...],
    listeners: tuple[Listener, ...],
    memory: HostMemory | None,
) -> AsyncResilientConnection:
    observer = Observer(listeners)
    failover = memory.failover if memory is not None else None
    engine = Engine(policies, ErrorTable(), failover=failover)
    connector = _Connector(driver_connect, args, kwargs, memory)

    async def first_setup(raw: Any) -> tuple[AsyncAdapter, float | None]:
        check_connection(raw)
        adapter: AsyncAdapter = adapters.async_adapter_for(raw)
        engine.driver_known(
            adapter.errors,
            adapter.in_process,
            adapter.idle_setting,
        )
        if failover is not None and failover.target is not Target.ANY and not adapter.reads_role:
            raise TypeError(
                f"target={failover.target.value!r} needs each server's role, which "
                f"resilient_dbapi cannot read through {adapter.name}; use target='any'"
            )
        return adapter, await _prepare(adapter, raw, statements, engine)

    started = _monotonic()
    raw, (adapter, wait_timeout), attempts = await connector.open(
        engine, first_setup, observer, connect_name(driver_connect)
    )
    cls = forwarding_class(AsyncResilientConnection, raw, mixins=adapter.surface)
    conn = cls(raw, adapter, engine, connector, wait_timeout, statements, observer)
    observer.emit(Connected(adapter.describe(raw), attempts, _monotonic() - started))
    return conn


def creator(
    driver_connect: Callable[..., Any],
    *args: Any,
    policies: Sequence[Policy] | str | None = None,
    on_connect: Sequence[str] | None = None,
    listeners: Sequence[Listener] | None = None,
    hosts: Any = None,
    target: str | None = None,
    **kwargs: Any,
) -> Callable[[], Awaitable[AsyncResilientConnection]]:
    """A zero-argument factory of resilient connections, for a pool or an ORM.

    For example ``sqlalchemy.create_engine("mysql+pymysql://", creator=creator(
    pymysql.connect, host=..., user=...))``, or with ``resilient_dbapi.aio.creator``,
    ``create_async_engine("mysql+aiomysql://", async_creator=...)``. With ``hosts=``,
    the connections it makes share what they learn about the hosts (a dead primary is
    tried last by all of them).
    """
    check_callable(driver_connect)
    statements = check_on_connect(on_connect)
    observers = check_listeners(listeners)
    resolved = resolve_policies(policies)
    memory = check_failover(hosts, target, kwargs)
    Engine(resolved, ErrorTable())  # validates the policies now, not at first use

    async def make() -> AsyncResilientConnection:
        return await _open(
            driver_connect, args, kwargs, list(resolved), statements, observers, memory
        )

    make.__qualname__ = make.__name__ = "resilient_creator"
    return make
