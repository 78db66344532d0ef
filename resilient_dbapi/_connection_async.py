"""The resilient connection: a PEP 249 proxy driven by the engine.

``_connection_async.py`` (asyncio) is the source of ``connection.py`` (sync), which
``tools/async_to_sync.py`` generates from it; a test checks that it is current. Code
under ``if True:  # ASYNC`` is the asyncio version, its ``else:`` branch the sync one.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from . import adapters
from ._connection_base import AsyncConnectionBase, check_tls, replay_call
from ._connector import (
    ConnectorBase,
    Request,
    WrongRole,
    first_adapter,
    role_wanted,
    wrong_connect_error,
)
from ._cursor_async import AsyncResilientCursor
from ._cursor_base import cursor_kind
from ._forwarding import forwarding_class
from .adapters import AsyncAdapter, Liveness
from .engine import Engine, Op, Reason, Verdict
from .error_kinds import Code
from .events import Connected, Listener, Observer
from .hosts import Host
from .policies import Policy
from .statements import (
    BEGIN_OP,
    COMMIT_OP,
    HISTORY_OP,
    READ_OP,
    ROLLBACK_OP,
    SESSION_OP,
    WRITE_OP,
    Statement,
    StatementKind,
    foldable,
    statement,
)

if True:  # ASYNC
    import asyncio

__all__ = ["AsyncResilientConnection", "connect", "creator"]

T = TypeVar("T")
_ALIVE = Liveness.ALIVE
_READ = StatementKind.READ
_monotonic = time.monotonic
_UNREAD_SETTINGS = frozenset({"settings after the first of a query() (not read back)"})


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
                    if not self.attempt_failed(exc, host, raw, engine, observer, outcomes):
                        raise
                    saw_wrong_role = saw_wrong_role or isinstance(exc, WrongRole)
                    last = exc
            elapsed = _monotonic() - started
            wait = self.retry_wait(last, engine, attempt, elapsed, observer, where, saw_wrong_role)
            if wait is None:
                self.give_up(last, outcomes, attempt, elapsed)
            if True:  # ASYNC
                await asyncio.sleep(wait)
            else:
                time.sleep(wait)


class AsyncResilientConnection(AsyncConnectionBase):
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
        return await _prepare(
            self._adapter, raw, self._on_connect, self._engine, self._connector.autocommit
        )

    async def _replace(self, reason: Reason, code: Code | None = None) -> None:
        """Replace a dead connection (see :meth:`_replacing`)."""
        started = self._replacing(reason, code)
        connector = self._connector
        connector.carry(self._adapter.carry_over(self._raw))
        try:
            raw, wait_timeout, attempts = await connector.open(
                self._engine, self._setup, self._observer, self._where()
            )
        finally:
            connector.carried = {}  # nor keep the old connection alive
        self._replaced(raw, wait_timeout, reason, code, attempts, started)

    async def _note(self, stmt: Statement, query: Any, args: Any, cursor: Any = None) -> None:
        """After a statement other than a plain read: the engine journals session
        settings and remembers session state no replay can rebuild."""
        engine = self._engine
        if stmt.kind is StatementKind.SESSION:
            taken = None
            if stmt.parts and not args and cursor is not None:
                # The driver read the first result only: a later setting's error would
                # surface at the next command, after a bad setting was journaled for
                # every reconnect. Read them all now; journal what the server took.
                done, error = await self._drain(cursor._raw)
                if error is not None:
                    engine.settings_made(stmt, query, args, done)
                    raise error
            elif stmt.parts and self._adapter.pending(self._raw):
                # query() returned after the first; the rest are the caller's to read, so
                # whether the server took them is not known here: journal the first, and
                # name the rest as state no replay can vouch for.
                taken = 1
                engine.state_made(_UNREAD_SETTINGS)
                self._sets_left = True
            if engine.settings_made(stmt, query, args, taken) and taken is None:
                try:
                    wait_timeout = await self._adapter.wait_timeout(self._raw)
                except Exception as exc:
                    self._failed(exc, Op.FETCH, READ_OP, 0)  # records the loss and raises
                    raise
                except BaseException:
                    self._interrupted(Op.FETCH, READ_OP)
                    raise
                engine.wait_timeout_changed(wait_timeout, _monotonic())
                # The caller's SET left no rows, no insert id: the question showed none.
                self._adapter.forget_setup(self._raw)
        elif stmt.kind is StatementKind.WRITE:
            if stmt.effects:
                engine.state_made(stmt.effects)
            # The server names writes it cannot roll back as they happen; taken after
            # every write, so that nothing said outside a transaction is counted in one.
            engine.wrote_in_transaction(stmt, self._adapter.kept_writes(self._raw))
            if self._adapter.pending(self._raw):  # a CALL's, perhaps
                self._sets_left = True
                self._sets_left_by = (Op.EXECUTE, stmt)
                if cursor is not None and cursor._unbuffered:
                    self._hold_sets(cursor)

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

    async def _start_stream(self, what: str, cursor: Any) -> Any:
        """Before a driver operation that streams past the proxy (psycopg's COPY): the
        checks a statement gets, and from now on it counts as a write (with autocommit
        off, a connection lost before the COMMIT is then a lost transaction, never a
        commit of nothing). Returns ``cursor``'s driver cursor to stream through."""
        self._check_usable()
        self._enter(what)
        try:
            if not self._engine.stale:
                self._engine.driver_transaction(self._status(self._raw)[0])
            if not self._engine.txn_writes:
                await self._checkout()
            self._engine.done(WRITE_OP, *self._status(self._raw), _monotonic())
            return await cursor._current()
        finally:
            self._leave()

    async def _checkout(self) -> None:
        """Before sending outside a transaction: make sure the connection is usable."""
        reason, code, ping_timeout = self._check_plan()
        if reason is not None:
            await self._replace(reason, code)
        elif ping_timeout is not None:
            started = _monotonic()
            try:
                await self._adapter.ping(self._raw, ping_timeout)
            except Exception as exc:
                code = self._adapter.error_code(exc)
                if code is None:
                    raise
                self._pinged(False, started)
                await self._replace(Reason.PING, code)
            except BaseException:
                # Interrupted mid-ping (cancelled): the reply may still be on its way.
                self._abandon(Reason.PING)
                raise
            else:
                self._pinged(True, started)

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
        self._check_usable()
        while True:
            if not self._engine.stale and self._adapter.pending(self._raw):
                await self._read_left_sets()
            self._sets_left = False
            self._sets_left_by = self._sets_left_cursor = None
            self._track_driver_transaction()
            if not self._engine.txn_writes:
                await self._checkout()
            elif self._engine.unproven(stmt):
                self._dead_before_sending(op, stmt)
            if self._engine.history_lost:
                self._check_history(stmt)
            if stmt.table is not None and self._asks_table(stmt):
                gone = await self._ask_table(stmt.table)
                if gone is not None:
                    # The connection died with the question: the statement was never sent.
                    if self._failed(gone, op, stmt, resends, sent=False) is Verdict.RECOVERED:
                        return None  # type: ignore[return-value]
                    resends += 1
                    continue
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
            self._engine.done(stmt, *self._status(self._raw), _monotonic())
            return result

    async def _read_left_sets(self) -> None:
        """Read the result sets the last statement left, before any check: the driver
        would read them before its next command anyway, but their bytes on the socket
        are rows, not news of the connection's end, and a failure reading them belongs
        to the last statement (a write whose outcome is then unknown, or a failed
        fetch), never to the next one."""
        left_by = self._sets_left_by
        try:
            await self._drain_left()
        except Exception as exc:
            self._left_failed(exc, left_by)
            raise
        except BaseException:
            self._interrupted(*(left_by or (Op.FETCH, READ_OP)))
            raise

    async def _drain_left(self) -> None:
        """Read every result set left unread: first through the unbuffered cursor whose
        current result is one of them (its rows come first: mysqlclient refuses the next
        set with "commands out of sync" otherwise), then through the connection."""
        ref = self._sets_left_cursor
        holder = None if ref is None else ref()
        if holder is not None and holder._gen == self._gen and not holder._closed:
            raw_cursor = holder._raw
            while await raw_cursor.nextset():
                pass
        await self._adapter.drain(self._raw)

    async def _fetch(self, read: Callable[..., Awaitable[T]], *args: Any) -> T:
        """A read of results already asked for, under the rules of a failed fetch (never
        sent again; a lost connection is recorded)."""
        try:
            return await read(*args)
        except Exception as exc:
            self._failed(exc, Op.FETCH, READ_OP, 0)
            raise  # a fetch is never sent again
        except BaseException:
            self._interrupted(Op.FETCH, READ_OP)
            raise

    async def _ask_table(self, table: tuple[str, str]) -> Exception | None:
        """Ask the server whether everything a write to ``table`` does rolls back, before
        a write whose reply cannot say (see :meth:`Engine.asks_table`). Returns the
        driver's error when the connection died with the question; any other error
        answers "perhaps not" (the weaker claim; see :meth:`Engine.table_unanswered`)."""
        try:
            rolls_back = await self._adapter.table_rolls_back(self._raw, *table)
        except Exception as exc:
            code = self._adapter.error_code(exc)
            if code is None:
                raise
            if self._engine.is_dead(code):
                return exc
            self._engine.table_unanswered(table, code)
            return None
        except BaseException:
            self._interrupted(Op.EXECUTE, READ_OP)  # only the question was in flight
            raise
        self._engine.table_known(table, rolls_back)
        return None

    async def _guarded(
        self,
        what: str,
        op: Op,
        stmt: Statement,
        send: Callable[..., Awaitable[T]],
        *args: Any,
        journal: tuple[str, tuple[str, Any]] | None = None,
    ) -> T:
        """A driver method that sends, under the rules of :meth:`_run`; ``journal``: the
        session setting it made, journaled once it took effect (a refused setting must
        not poison reconnects)."""
        self._enter(what)
        try:
            result = await self._run(op, stmt, send, *args)
            if journal is not None:
                self._engine.record(*journal)
            return result
        finally:
            self._leave()

    async def _judge(self, exc: Exception, op: Op, stmt: Statement, resends: int) -> Verdict:
        """The safety rules on a failed operation, asking the server first whether it
        turned read-only when the engine needs to know: returns RESEND or RECOVERED,
        raises anything else. Another cause of a read-only refusal (``--secure-file-priv``,
        a transaction the caller made READ ONLY) leaves the error to the caller."""
        read_only = False
        code = self._adapter.error_code(exc)
        if code is not None and self._engine.asks_role(code):
            try:
                read_only = bool(await self._adapter.read_only(self._raw))
            except Exception as asked:
                # Gone meanwhile: the refusal stands, and the next host's role is checked.
                read_only = self._engine.is_dead(self._adapter.error_code(asked))
            except BaseException:
                self._interrupted(op, stmt)  # the question may still be on its way
                raise
        return self._failed(exc, op, stmt, resends, read_only)

    # -- PEP 249 ------------------------------------------------------------------

    if True:  # ASYNC

        def cursor(self, *cursors: Any) -> _CursorOpener:
            """A cursor: ``await`` it or use ``async with``; ``cursors`` are driver cursor
            classes, as in ``aiomysql``."""
            self._check_open()
            return _CursorOpener(self, cursors)

    else:

        def cursor(self, *args: Any, **kwargs: Any) -> AsyncResilientCursor:
            """A :class:`ResilientCursor`; the arguments are the driver's (a cursor class
            for PyMySQL, ``row_factory=`` for psycopg ...)."""
            if self._closed:
                self._check_open()
            try:
                return AsyncResilientCursor.create(self, args, kwargs)
            except Exception as exc:
                if self._adapter.error_code(exc) is None:
                    raise
            # Some drivers ask the server for a cursor (mysql-connector pings first): a
            # dead connection is replaced as for a read, when that is safe.
            return self._guarded(
                "cursor", Op.EXECUTE, READ_OP, AsyncResilientCursor.create, args, kwargs
            )

    async def commit(self) -> None:
        self._enter("commit")
        try:
            await self._finish(Op.COMMIT, COMMIT_OP)
        finally:
            self._leave()

    async def rollback(self) -> None:
        self._enter("rollback")
        try:
            self._check_open()
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
        if not self._must_finish(op):
            return
        raw = self._raw
        if self._adapter.pending(raw):
            # As the driver would before its next command: else mysqlclient answers
            # "commands out of sync" (2014) to a COMMIT never sent, and a CALL's later
            # error is taken for the server's answer to it.
            left_by = self._sets_left_by
            # What left them wrote, and the end cannot settle it: a COMMIT, or either
            # with autocommit on (a ROLLBACK then undoes nothing).
            theirs = left_by is not None and (op is Op.COMMIT or self._status(raw)[1])
            try:
                await self._drain_left()
            except Exception as exc:
                code = self._adapter.error_code(exc)
                if code is None:
                    raise
                if op is Op.COMMIT or theirs:
                    self._left_failed(exc, left_by)  # nothing is committed after it
                    raise
                if self._engine.is_dead(code):
                    # Judged as the ROLLBACK never sent: it has nothing left to do.
                    if self._failed(exc, op, stmt, 0, sent=False) is not Verdict.RECOVERED:
                        raise exc from None
                    return
                # A ROLLBACK still rolls back, and so undoes what failed part way.
                await self._finish_now(op, stmt)
                return
            except BaseException:
                # The end was never sent: it is the left write's, or a failed fetch.
                self._interrupted(*(left_by if theirs and left_by else (Op.FETCH, READ_OP)))
                raise
        self._sets_left = False
        self._sets_left_by = self._sets_left_cursor = None
        await self._finish_now(op, stmt)

    async def _finish_now(self, op: Op, stmt: Statement) -> None:
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
        self._engine.done(stmt, *self._status(raw), _monotonic())

    if True:  # ASYNC

        async def ensure_closed(self) -> None:
            """Say goodbye to the server (COM_QUIT), then close, as ``aiomysql`` does."""
            if self._closed:
                return
            # Never refused: another task inside an operation is aborted by close()
            # below, and a result another task left unread is no reason to keep the
            # session (and its locks) open; aiomysql says goodbye over it too.
            if not self._engine.stale and self._claim(False):
                self._in_flight = "close"
                try:
                    await self._raw.ensure_closed()
                except Exception:  # closed below all the same
                    self._adapter.discard(self._raw)
                finally:
                    self._leave()  # ends an abort a close() meanwhile began
            self.close()

        async def _revive(self) -> None:
            """Replace a physical connection already given up, before making a cursor."""
            self._enter("cursor")
            try:
                engine = self._engine
                if engine.lost and not self._closed:
                    self._check_usable()  # the loss again, until rollback(): no new session
                if engine.stale and not self._closed:
                    await self._replace(engine.stale_reason, engine.stale_code)
            finally:
                self._leave()

    if True:  # ASYNC

        def connect(self, *args: Any, **kwargs: Any) -> None:
            """Refused: resilient_dbapi opens and replaces physical connections itself."""
            self._check_connect()

    else:

        def connect(self, sock: Any = None) -> None:
            """Open the connection (PyMySQL's ``connect()``): the first physical connection
            of one made with ``defer_connect=True``, or a new session for a closed one,
            which gets the connection's settings as any replacement does.

            ``sock``: a socket connected to the server, for the session to run on. Such a
            connection is never replaced, as resilient_dbapi knows no other way to that
            server: once it is lost, statements raise the driver's "gone away" error
            until ``connect()`` is called again. Refused on an open connection."""
            self._check_connect()
            if self._closed:
                self._reopen("connect")
            self._enter("connect")
            try:
                self._check_usable()  # a transaction lost with close(): rollback() first
                engine = self._engine
                try:
                    if sock is None:
                        engine.on_callers_socket(False)
                        self._replace(engine.stale_reason, engine.stale_code)
                    else:
                        self._replace_on(sock, engine.stale_reason, engine.stale_code)
                except BaseException:
                    self._closed = True  # not open, as the driver's after a failed connect
                    raise
            finally:
                self._leave()

        def _replace_on(self, sock: Any, reason: Reason, code: Code | None) -> None:
            """Replace the physical connection by one opened on the caller's socket."""
            engine = self._engine
            engine.on_callers_socket(False)
            started = self._replacing(reason, code)
            engine.on_callers_socket(True)  # a failure below leaves nothing to replace
            # The deferred driver connection is the caller's, set up before connect().
            raw = self._raw if self._deferred else self._connector.deferred()
            try:
                raw.connect(sock)
                wait_timeout = self._setup(raw)
            except WrongRole as wrong:
                self._adapter.discard(raw)
                raise self._connector.role_refused(wrong, "the socket given to connect()") from None
            except BaseException:
                self._adapter.discard(raw)
                raise
            self._replaced(raw, wait_timeout, reason, code, 1, started)

    async def ping(self, reconnect: object = None) -> None:
        """Check the connection with a round trip, replacing it when that is safe.

        On an open connection the policies decide, whatever ``reconnect`` says. Raises
        if the connection is dead inside a transaction with writes. After ``close()``,
        it opens a new session with the connection's settings where the driver's would
        reconnect: ``reconnect=True`` (aiomysql's default).
        """
        if self._closed and self._reopens(reconnect):
            self._reopen()
        await self._guarded("ping", Op.EXECUTE, READ_OP, _send_ping, self._ping_timeout)

    async def begin(self) -> None:
        await self._guarded("begin", Op.EXECUTE, BEGIN_OP, _send_call, "begin", ())

    async def autocommit(self, value: bool) -> None:
        """Set autocommit; the setting is re-applied to every new physical connection."""
        value = bool(value)
        # Turning autocommit on commits an open transaction. Should the connection die
        # with nothing written, the next connection gets the setting all the same.
        op, stmt = (Op.COMMIT, COMMIT_OP) if value else (Op.EXECUTE, READ_OP)
        journal = ("set autocommit", ("autocommit", value))
        await self._guarded("autocommit", op, stmt, _send_autocommit, value, journal=journal)

    async def select_db(self, db: str) -> None:
        """Change the default database; re-applied to every new physical connection."""
        journal = ("use", ("select_db", db))
        await self._guarded("select_db", Op.EXECUTE, READ_OP, _send_select_db, db, journal=journal)

    # -- driver methods that send: guarded and tracked like execute() ---------------

    async def query(self, sql: Any, unbuffered: bool = False) -> Any:
        """The driver's ``query()``, under the same rules as ``cursor.execute()``."""
        stmt = statement(sql, self._postgres)
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
        try:
            return await self._fetch(self._raw.next_result, *((unbuffered,) if unbuffered else ()))
        finally:
            self._leave()

    async def show_warnings(self) -> Any:
        return await self._guarded(
            "show_warnings", Op.EXECUTE, HISTORY_OP, _send_call, "show_warnings", ()
        )

    async def kill(self, thread_id: int) -> Any:
        """``KILL`` another connection (idempotent: sent again if the connection drops)."""
        return await self._guarded("kill", Op.EXECUTE, SESSION_OP, _send_call, "kill", (thread_id,))

    async def set_character_set(self, charset: str, collation: str | None = None) -> None:
        """PyMySQL's ``set_character_set()``; re-applied to every new connection."""
        await self._set_names("set_character_set", (charset, collation))

    async def set_charset(self, charset: str) -> None:
        """The driver's ``set_charset()``; re-applied to every new connection."""
        await self._set_names("set_charset", (charset,))

    async def _set_names(self, method: str, args: tuple[Any, ...]) -> None:
        journal = ("set names", ("call", (method, args)))
        await self._guarded(
            method, Op.EXECUTE, SESSION_OP, _send_call, method, args, journal=journal
        )

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
            # AsyncResilientCursor.create(), one coroutine fewer per cursor.
            classes = self._classes
            raw = await conn._raw.cursor(*classes)
            known = conn._cursor_kinds.get(type(raw))
            if known is None:
                known = cursor_kind(AsyncResilientCursor, conn, raw)
            made: AsyncResilientCursor = known[0](conn, classes, {}, raw, known[1])
            return made

        async def __aexit__(self, *exc_info: object) -> None:
            if self._cursor is not None:
                await self._cursor.close()


async def _prepare(
    adapter: AsyncAdapter,
    raw: Any,
    on_connect: tuple[str, ...],
    engine: Engine,
    autocommit: bool | None = None,
) -> float | None:
    """Check a new driver connection (TLS, role), set its autocommit mode when it was
    taken out of the driver's arguments (see Request.autocommit), run ``on_connect``
    and replay the journal on it; return its wait_timeout when the policies follow it."""
    adapter.adopt(raw)  # before any statement
    if engine.dead_peer is not None:
        adapter.set_dead_peer_timeout(raw, engine.dead_peer.seconds)
    check_tls(adapter, raw, engine)
    target = role_wanted(engine)
    if target is not None:
        read_only = await adapter.read_only(raw)
        if not target.accepts(read_only):
            raise WrongRole(adapter, read_only)
    tracking = adapter.tracking_sql(raw)
    mode = None if autocommit is None else f"autocommit = {int(autocommit)}"
    setup = tracking if mode is None else f"{tracking}, {mode}" if tracking else f"SET {mode}"
    journal = list(engine.journal.values())
    # The journal's first settings ride in the same statement (a round trip each, else),
    # never before on_connect nor before the completion question: they must come after.
    fold = setup is not None and not on_connect and not engine.asks_completion()
    folded = foldable(journal) if fold else []
    if setup is not None:
        if folded:
            try:
                await adapter.execute(raw, ", ".join((setup, *folded)), None)
            except Exception as exc:
                code = adapter.error_code(exc)
                if code is None or engine.is_dead(code):
                    raise
                folded = []  # one of them refused: each on its own, as unfolded
        if not folded:
            try:
                await adapter.execute(raw, setup, None)
            except Exception as exc:
                code = adapter.error_code(exc)
                if code is None or engine.is_dead(code) or tracking is None:
                    raise
                tracking = None  # a server without it (error 1193): no rollback is provable
                if mode is not None:
                    await adapter.execute(raw, f"SET {mode}", None)
    if autocommit is not None:
        raw.autocommit_mode = autocommit  # the driver's own record (PyMySQL's, aiomysql's)
    engine.tracking(
        tracking is not None, adapter.transactional_only, adapter.says_transaction, on_connect
    )
    if engine.tracks:
        adapter.watch_writes(raw)
    for sql in on_connect:
        await adapter.execute(raw, sql, None)
    if engine.asks_completion():
        chains: bool | None
        try:
            chains = await adapter.completion_chains(raw)
        except Exception as exc:
            code = adapter.error_code(exc)
            if code is None or engine.is_dead(code):
                raise
            chains = None  # not told: an end may chain (the weaker claim)
        engine.completion_known(chains)
    for method, payload in journal[len(folded) :]:
        if method == "setattr":
            setattr(raw, *payload)
        else:
            call, args = replay_call(adapter, raw, method, payload)
            await call(*args)
    wait_timeout = None
    if engine.wants_wait_timeout:
        if engine.reuses_wait_timeout:
            wait_timeout = engine.wait_timeout
        else:
            wait_timeout = await adapter.wait_timeout(raw)
    adapter.forget_setup(raw)  # insert_id() and the like: as after connect
    return wait_timeout


# What the guarded methods send, once the checks before it are done.


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
        conn._pinged(False, started)
        raise
    conn._pinged(True, started)


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
    checked = (driver_connect, args, kwargs, policies, on_connect, listeners, hosts, target)
    return await _open(Request.checked(*checked))


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
    checked = (driver_connect, args, kwargs, policies, on_connect, listeners, hosts, target)
    request = Request.checked(*checked)
    request.engine()  # the policies checked now, not at the first connect

    async def make() -> AsyncResilientConnection:
        return await _open(request)

    make.__qualname__ = make.__name__ = "resilient_creator"
    return make


async def _open(request: Request) -> AsyncResilientConnection:
    observer = Observer(request.listeners)
    engine = request.engine()
    connector = _Connector(
        request.driver_connect, request.args, request.kwargs, request.memory, request.autocommit
    )

    async def first_setup(raw: Any) -> tuple[AsyncAdapter, float | None]:
        adapter = first_adapter(raw, engine, adapters.async_adapter_for)
        return adapter, await _prepare(adapter, raw, request.on_connect, engine, request.autocommit)

    if request.deferred:
        if True:  # ASYNC
            raise TypeError("defer_connect=True is PyMySQL's: no asyncio driver takes it")
        else:
            raw = connector.deferred()
            adapter = first_adapter(raw, engine, adapters.async_adapter_for)
            cls = forwarding_class(AsyncResilientConnection, raw, mixins=adapter.surface)
            return cls(raw, adapter, engine, connector, None, request.on_connect, observer, True)
    started = _monotonic()
    raw, (adapter, wait_timeout), attempts = await connector.open(
        engine, first_setup, observer, request.where
    )
    cls = forwarding_class(AsyncResilientConnection, raw, mixins=adapter.surface)
    conn = cls(raw, adapter, engine, connector, wait_timeout, request.on_connect, observer)
    observer.emit(Connected(adapter.describe(raw), attempts, _monotonic() - started))
    return conn
