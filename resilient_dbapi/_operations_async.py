"""How a connection carries out one operation: the checkout before it, the send, the
engine's verdict after, replacing a dead physical connection, and ending a transaction.

``_operations_async.py`` (asyncio) is the source of ``_operations.py`` (sync), generated
by ``tools/async_to_sync.py``. What never waits is in ``_connection_base.py``; the
public surface (PEP 249 and the drivers' own methods) in ``_connection_async.py``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._connection_base import AsyncConnectionBase
from ._error_factories import describe_error, history_lost_error
from ._opening_async import Connector, prepare
from .adapters import AsyncAdapter, Liveness
from .engine import Op, Reason, Verdict
from .error_kinds import Code
from .events import TransactionReplayed
from .statements import READ_OP, WRITE_OP, Statement, StatementKind

__all__ = ["AsyncOperations"]

T = TypeVar("T")
_ALIVE = Liveness.ALIVE
_SESSION = StatementKind.SESSION
_WRITE = StatementKind.WRITE
_READ = StatementKind.READ
_monotonic = time.monotonic
_UNREAD_SETTINGS = frozenset({"settings after the first of a query() (not read back)"})


class AsyncOperations(AsyncConnectionBase):
    """The connection's operations under the engine's rules (see the module docstring);
    :class:`AsyncResilientConnection` is what callers get."""

    _adapter: AsyncAdapter
    _connector: Connector

    async def _setup(self, raw: Any) -> float | None:
        """Make a new driver connection mean what the old one meant; its wait_timeout."""
        return await prepare(
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
        kind = stmt.kind
        if kind is _SESSION:
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
        elif kind is _WRITE:
            if engine.insert_id_lost:
                engine.wrote_on_new_session()
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
            if self._adapter.warned(exc):
                return done + 1, exc  # raised after the last one ran: see _run
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
            self._track_driver_transaction()
            if not self._engine.txn_writes:
                await self._checkout()
            engine = self._engine
            engine.done(WRITE_OP, *self._status(self._raw), _monotonic())
            if engine.replay is not None:
                self._logged(WRITE_OP, what)  # past the log: never replayed
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
                if self._engine.replaying is not None:
                    await self._replay_transaction()
                else:
                    await self._checkout()
            elif (
                self._engine.unproven(stmt)
                and self._dead_before_sending(op, stmt) is Verdict.REPLAY
            ):
                continue
            if stmt.history and (self._engine.history_lost or self._engine.insert_id_lost):
                gone = await self._check_history(stmt)
                if gone is not None:
                    # The connection died with the question: the statement was never sent.
                    if self._failed(gone, op, stmt, resends, sent=False) is Verdict.RECOVERED:
                        return None  # type: ignore[return-value]
                    resends += 1
                    continue
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
                if self._adapter.warned(exc):
                    # Raised after the statement ran (the driver's warning of the
                    # server's, made an error by a filter): it ran, and a write of it is
                    # in the transaction; never judged as a failure (its write would be
                    # forgotten, then lost with a silent reconnect). The operation
                    # raises it once recorded.
                    now = _monotonic()
                    self._engine.done(stmt, *self._status(self._raw), now)
                    if op is Op.EXECUTEMANY or op is Op.CALLPROC:
                        # Perhaps stopped part way (aiomysql warns after each statement
                        # of several, and stops at the first warned): never replayed.
                        self._engine.logged(stmt, None, 0, now)
                    self._warned = exc
                    return None  # type: ignore[return-value]
                if await self._judge(exc, op, stmt, resends) is Verdict.RECOVERED:
                    return None  # type: ignore[return-value]
                resends += 1
                continue
            except BaseException:
                self._interrupted(op, stmt)
                raise
            self._engine.done(stmt, *self._status(self._raw), _monotonic())
            return result

    async def _replay_transaction(self) -> None:
        """After a REPLAY verdict: a new connection (its session rebuilt from the journal),
        then the lost transaction's statements on it, in order, each result compared with
        what the caller saw the first time. Raises TransactionLostError, the new
        connection given up, at the first difference or failure."""
        engine = self._engine
        entries = engine.replaying or ()
        started = _monotonic()
        try:
            await self._checkout()  # the connection is stale: it is replaced
        except Exception as exc:
            raise self._replay_failed(f"no new connection ({describe_error(exc)})") from exc
        except BaseException:
            self._replay_failed("interrupted while reconnecting")
            raise
        raw = self._raw
        adapter = self._adapter
        cursor = None
        total = len(entries)
        opens = bool(entries) and (
            entries[0].method == "begin" or entries[0].statement.kind is StatementKind.BEGIN
        )
        if not opens and self._status(raw)[1]:
            # Opened by a statement under autocommit off, and the new session has it on:
            # the first replayed write would commit at once.
            raise self._replay_failed("the new connection runs with autocommit on")
        wrote = False
        try:
            for number, entry in enumerate(entries, 1):
                try:
                    if entry.method == "begin":
                        await raw.begin()
                    else:
                        if cursor is None:
                            how, named = adapter.replay_cursor
                            cursor = await raw.cursor(*how, **named)
                        if entry.method == "executemany":
                            await cursor.executemany(entry.query, entry.args)
                        else:
                            await cursor.execute(entry.query, entry.args)
                except Exception as exc:
                    # One that ran and warned, as the first run did, goes on: the
                    # digests compare it.
                    if not adapter.warned(exc):
                        raise self._replay_failed(
                            f"statement {number} of {total} failed ({describe_error(exc)})"
                        ) from exc
                seen = entry.digest
                if seen is not None and entry.method == "execute":
                    seen = adapter.kept_digest(seen)
                if seen is not None and adapter.result_digest(cursor) != seen:
                    raise self._replay_failed(
                        f"it diverged at statement {number} of {total}: its result differs "
                        "from what the first run showed"
                    )
                stmt = entry.statement
                engine.done(stmt, *self._status(raw), _monotonic())
                if stmt.kind is _WRITE:
                    wrote = True
                    engine.wrote_in_transaction(stmt, adapter.kept_writes(raw))
                # (Reads under autocommit off may run before the server reports the
                # transaction open, as they did the first time; never after a write.)
                if engine.kept or (not engine.txn_writes and (wrote or stmt.kind is not _READ)):
                    raise self._replay_failed(
                        f"statement {number} of {total} left the transaction unlike the "
                        "first run (ended it, or wrote to a table that cannot roll back)",
                        uncertain=True,
                    )
        except BaseException:
            if engine.replaying is not None:  # interrupted: nothing is known of the replay
                self._replay_failed("interrupted")
            raise
        finally:
            if cursor is not None:
                with contextlib.suppress(Exception):
                    await cursor.close()
        engine.replayed()
        self._observer.emit(TransactionReplayed(self._where(), total, _monotonic() - started))

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

    async def _check_history(self, stmt: Statement) -> Exception | None:
        """On a session that replaced another: refuse (SessionLostError) a statement
        asking about the history that went with the old one. For the last generated id,
        which outlasts the statements after it, the new session is asked first whether
        an insert on it generated one (then the statement asks about this session's).
        Returns the driver's error when the connection died with that question."""
        engine = self._engine
        refused = engine.asks_lost_history(stmt)
        if refused is None:
            try:
                made = await self._adapter.last_insert_id(self._raw)
            except Exception as exc:
                code = self._adapter.error_code(exc)
                if code is None:
                    raise
                if engine.is_dead(code):
                    return exc
                made = None  # not told: refused, the weaker claim
            except BaseException:
                self._interrupted(Op.EXECUTE, READ_OP)  # only the question was in flight
                raise
            refused = engine.insert_id_asked(bool(made))
        if refused:
            raise history_lost_error(self._adapter, self._observer, self._where())
        return None

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
            warned = self._take_warned()
            if journal is not None:
                self._engine.record(*journal)
            if self._engine.replay is not None:
                self._logged(stmt, what)  # begin() is kept; any other method past the log
            if warned is not None:
                raise warned
            return result
        finally:
            self._leave()

    async def _judge(self, exc: Exception, op: Op, stmt: Statement, resends: int) -> Verdict:
        """The safety rules on a failed operation, asking the server its role first when
        the engine needs to know (a refusal to write or to serve): returns RESEND or
        RECOVERED, raises anything else. Another cause of a read-only refusal
        (``--secure-file-priv``, a transaction the caller made READ ONLY) leaves the error
        to the caller."""
        role = None
        code = self._adapter.error_code(exc)
        if code is not None and self._engine.asks_role(code):
            try:
                role = await self._adapter.role(self._raw)
            except Exception as asked:
                # Gone meanwhile: the refusal stands, and the next host's role is checked.
                if self._engine.is_dead(self._adapter.error_code(asked)):
                    role = self._engine.refusal_role(code)
            except BaseException:
                self._interrupted(op, stmt)  # the question may still be on its way
                raise
        return self._failed(exc, op, stmt, resends, role)

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
                    if self._adapter.mid_reply(exc):  # see _failed
                        self._interrupted(*(left_by or (Op.FETCH, READ_OP)))
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
        engine = self._engine
        if (
            op is Op.COMMIT
            and engine.replay is not None
            and engine.txn_writes
            and engine.txn_log_ok
            and self._dead_before_sending(op, stmt) is Verdict.REPLAY
        ):
            # Found dead before the COMMIT was sent (a socket check, microseconds): the
            # transaction is replayed on a new connection, then committed there.
            await self._replay_transaction()
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
