"""What the two connection twins share that never waits: their state, the guard
against concurrent use, and carrying out the engine's verdicts on a failed or interrupted
operation. The asyncio sources ``_operations_async.py`` (carrying out an operation),
``_connection_async.py`` (the public surface) and ``_opening_async.py`` (opening a
physical connection), and their generated sync twins, hold only what awaits.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from ._connector import ConnectorBase, timed_out
from ._error_factories import (
    closed_error,
    concurrent_use_error,
    lost_again_error,
    new_error,
    replay_failed_error,
    session_lost_before_send,
    socket_gone_error,
    tls_downgrade_error,
    verdict_error,
)
from ._probe import Prober
from .adapters import Adapter, AsyncAdapter, Inspector, Liveness
from .engine import Engine, LogEntry, Op, Reason, Verdict
from .error_kinds import Code
from .events import (
    Connected,
    Observer,
    OutcomeUnknown,
    Pinged,
    Reconnected,
    Retrying,
    Stats,
    TransactionLost,
)
from .hosts import Role
from .statements import (
    POSTGRES_STATEMENTS,
    READ_OP,
    STATEMENTS,
    WRITE_OP,
    Statement,
    StatementKind,
)

__all__ = ["AsyncConnectionBase", "ConnectionBase", "check_tls", "knows_autocommit"]

_monotonic = time.monotonic
# What a refusal that replaces the connection says of its host (see leave_current).
_REFUSED = {Reason.READ_ONLY: "turned read-only", Reason.NOT_READY: "stopped serving"}
_ALIVE = Liveness.ALIVE
_READ = StatementKind.READ


def always_alive() -> Liveness:
    """The probe of a connection whose liveness is not checked."""
    return Liveness.ALIVE


class ConnectionBase:
    """The state of a resilient connection and its I/O-free operations (see
    :class:`~resilient_dbapi.connection.ResilientConnection` for the public surface)."""

    _resilient_dbapi_proxy = True  # never wrapped by another (see adapters._find)

    _raw: Any
    _adapter: Inspector
    _status: Callable[[Any], tuple[bool, bool]]
    """The adapter's ``status``: ``(in_transaction, autocommit)`` as last reported."""
    _described: str
    # Set on a connection opened under a tracing integration (see _telemetry).
    _telemetry: Any = None
    _cursor_mixins: tuple[type, ...] = ()
    # Guarded methods of some drivers only: hidden where the driver has no such method.
    _driver_methods = (
        "begin",
        "select_db",
        "query",
        "next_result",
        "show_warnings",
        "kill",
        "set_character_set",
        "set_charset",
    )

    def __init__(
        self,
        raw: Any,
        adapter: Inspector,
        engine: Engine,
        connector: ConnectorBase,
        wait_timeout: float | None,
        on_connect: tuple[str, ...] = (),
        observer: Observer | None = None,
        deferred: bool = False,
    ) -> None:
        self._raw = raw
        self._adapter = adapter
        self._engine = engine
        self._connector = connector
        self._on_connect = on_connect
        self._gen = 0
        self._closed = False
        # A lock taken only without blocking: a second thread or task is refused at once.
        self._guard = threading.Lock()
        self._claim = self._guard.acquire
        self._release = self._guard.release
        self._in_flight = ""
        self._streamer: object = None  # see _stream_seen()
        # Whether the last statement may have left result sets unread (a CALL's, several
        # statements'): then the next one takes the slow path, which reads them first.
        self._sets_left = False
        # ...and, when what left them may write, that operation: a failure reading them
        # leaves its outcome unknown (None: reads, or settings).
        self._sets_left_by: tuple[Op, Statement] | None = None
        # ...and the unbuffered cursor whose current result is one of them, if any.
        self._sets_left_cursor: weakref.ref[Any] | None = None
        self._stream_cursor: weakref.ref[Any] | None = None
        # A warning the driver raised after the statement ran (aiomysql warns of the
        # server's warnings; a filter may make that an error): kept by _run, raised by
        # the operation once the statement is recorded as run (see _take_warned).
        self._warned: Exception | None = None
        # close() found an operation in flight and aborted it: the physical connection is
        # given up by whichever of the two finishes last (see _finish_abort).
        self._aborting = False
        # Made with defer_connect=True and not opened yet: the first connect() opens it.
        self._deferred = deferred
        self._status = adapter.status
        self._in_process = adapter.in_process
        # The proxy class and bufferedness of each driver cursor class (see cursor_kind).
        self._cursor_kinds: dict[type, tuple[type, bool]] = {}
        # Statement records under the server's dialect (its built-in functions).
        self._postgres = adapter.postgres
        self._statements = POSTGRES_STATEMENTS if adapter.postgres else STATEMENTS
        # The driver has its own API that opens transactions past the proxy (psycopg's
        # transaction(), mysql-connector's start_transaction()).
        self._driver_transactions: bool = adapter.opens_transactions
        self._probe: Callable[[], Liveness] = always_alive
        # A check that costs no system call (what the event loop already knows), run
        # before every statement, inside the skip window too; None for drivers without.
        self._gone: Callable[[], bool] | None = None
        # Skip the socket check for a connection used this recently (HikariCP's idea).
        self._skip_recent = engine.ping.skip_recent if engine.ping else float("inf")
        self._observer = observer or Observer(())
        if deferred:
            # Not a session yet: the engine has never been connected (its first
            # connection then replaces nothing, and no name was reached).
            self._raw = raw
            self._described = adapter.describe(raw)
            self._closed = True
        else:
            self._install(raw, wait_timeout)

    @property
    def raw(self) -> Any:
        """The current driver connection (it changes when the connection is replaced)."""
        return self._raw

    def _install(self, raw: Any, wait_timeout: float | None) -> None:
        self._raw = raw
        self._gen += 1
        self._sets_left = False  # the old connection's, gone with it
        self._sets_left_by = self._sets_left_cursor = None
        # Described once: a driver may not say where a connection led once it is closed.
        self._described = self._adapter.describe(raw)
        gone = None
        if self._engine.checks_liveness:
            self._probe = self._adapter.probe(raw)
            gone = self._adapter.known_dead(raw)
        if self._connector.memory is not None:
            gone = self._connector.watch(gone)  # the health view of several hosts
        self._gone = gone
        self._engine.connected(_monotonic(), wait_timeout)

    # -- decisions before and after a send (the twins carry them out) ---------------

    def _track_driver_transaction(self) -> None:
        """Read a transaction the driver opened past the proxy (psycopg's transaction(),
        mysql-connector's start_transaction()) before any check: a probe may consume the
        news of the connection's death, and with it the driver's memory of it."""
        engine = self._engine
        if self._driver_transactions and not engine.stale and not self._closed:
            in_trans, autocommit = self._status(self._raw)
            engine.driver_transaction(in_trans)
            if engine.txn_writes and not autocommit and self._adapter.ended_unseen(self._raw):
                # Committed or rolled back by the driver's own API: what it held is not
                # the proxy's to lose, nor to replay.
                engine.ended_unseen()

    def _check_plan(self) -> tuple[Reason | None, Code | None, float | None]:
        """The checkout before sending outside a transaction, decided without I/O: a
        reason (and the error code behind it) to replace the connection, or the timeout
        of a ping to send first, or neither."""
        engine = self._engine
        if not engine.stale and self._status(self._raw)[0]:
            # A transaction the driver opened without the proxy seeing it: never replaced
            # silently; a failure of the statement reports it lost.
            engine.driver_transaction(True)
            return None, None, None
        if self._connector.news() is not None and engine.host_marked():
            return Reason.HOST_MARKED, None, None
        now = _monotonic()
        timeout = None
        if engine.stale or now >= engine.next_check_at:
            plan = engine.checkout(now)
            if plan.reconnect is not None:
                return plan.reconnect, engine.stale_code if engine.stale else None, None
            timeout = plan.ping_timeout
        liveness = self._probe()
        if liveness is not _ALIVE and self._adapter.busy(self._raw):
            return None, None, None  # an unbuffered result is being read: rows, not news
        if liveness is Liveness.DEAD:
            return Reason.LIVENESS, None, None
        if liveness is Liveness.UNSURE and timeout is None:
            timeout = self._ping_timeout
        return None, None, timeout

    def _leaves_marked_host(self) -> bool:
        """Outside a transaction with writes, before something that skips the checkout
        (a commit or rollback with nothing to end, a cursor some drivers ping for):
        whether the engine gave the connection up because its host was marked since it
        arrived (see HostMemory). One number compared without ``hosts=``' news."""
        engine = self._engine
        gone = self._gone
        if (
            gone is not None
            and not engine.stale
            and not engine.txn_writes
            and gone()
            and not self._status(self._raw)[0]
            and self._connector.news() is not None
            and engine.host_marked()
        ):
            # Let go of the socket now: a driver that asks it something before the
            # replacement (mysql-connector's cursor() pings) fails at once, not hangs.
            self._adapter.discard(self._raw)
            return True
        return False

    @property
    def _ping_timeout(self) -> float:
        ping = self._engine.ping
        return ping.timeout if ping else 5.0

    def _pinged(self, alive: bool, started: float) -> None:
        now = _monotonic()
        if alive:
            self._engine.used(now)
        self._observer.emit(Pinged(self._where(), alive, now - started))

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error(self._adapter, self._deferred)

    def _check_usable(self) -> None:
        """Refuse an operation on a closed connection, or after a loss not yet
        acknowledged with rollback()."""
        self._check_open()
        engine = self._engine
        if engine.lost and engine.replaying is None:  # a pending replay is for _run to do
            raise lost_again_error(self._adapter, engine)

    def _enter(self, what: str, cursor: object = None) -> None:
        """Claim the connection for one operation (through ``cursor``, if one), or refuse
        at once if it is in use."""
        if not self._guard.acquire(False):
            self._observer.stats.concurrent_use_refused += 1
            raise concurrent_use_error(self._adapter, self._in_flight, what)
        self._in_flight = what
        if self._streamer is not None:
            try:
                self._stream_check(what, cursor)
            except BaseException:
                self._guard.release()
                raise

    def _leave(self, cursor: Any = None) -> None:
        if self._streamer is not None or (cursor is not None and cursor._unbuffered):
            self._stream_seen(cursor)
        self._guard.release()
        if self._aborting:
            self._finish_abort()

    # An unbuffered result (PyMySQL's SSCursor) stays open on the connection between
    # operations, until it is read to the end or its cursor closed: the guard covers it,
    # or another thread's statement would drain the rows its reader has not read yet.
    # Its reader is the thread (task) that last used it; its cursor may be handed over.
    _owner: Callable[[], object] = staticmethod(threading.get_ident)

    def _stream_seen(self, cursor: object = None, opened: bool = False) -> None:
        """After an operation (through ``cursor``, if one) that may have opened or
        finished an unbuffered result (``opened``: a statement ran on that cursor,
        draining any result open before): whose it is now (None: no result is open)."""
        if self._engine.stale or not self._adapter.busy(self._raw):
            self._streamer = self._stream_cursor = None
        elif self._streamer is None or opened:  # opened now; an older one is its reader's
            self._streamer = self._owner()
            # Weak: a cursor dropped unread is freed at once (the driver ends its stream).
            self._stream_cursor = None if cursor is None else weakref.ref(cursor)

    def _stream_check(self, what: str, cursor: object = None) -> None:
        """Before an operation while an unbuffered result is open: only its reader may
        go on (its own statement drains the rest, as the driver does). Its cursor,
        used from another thread or task, makes that one the reader: it was handed over."""
        owner = self._owner()
        if self._streamer == owner:
            return
        reader = self._stream_cursor
        if cursor is not None and reader is not None and cursor is reader():
            self._streamer = owner
            return
        if self._engine.stale or not self._adapter.busy(self._raw):
            self._streamer = self._stream_cursor = None  # read to the end, or freed, since
        else:
            self._observer.stats.concurrent_use_refused += 1
            raise concurrent_use_error(
                self._adapter, "an unbuffered result not read to the end", what
            )

    def _attribute_set(self, name: str, value: Any) -> None:
        """A driver attribute set through the proxy: set on the driver connection (unless
        it was given up already) and again on every new one."""
        if not self._engine.stale or self._deferred:
            setattr(self._raw, name, value)  # the driver checks the value first
        self._engine.record(f"attribute {name}", ("setattr", (name, value)))

    def _where(self) -> str:
        return self._described

    @property
    def reconnects(self) -> int:
        """How many times the physical connection was replaced."""
        return self._observer.stats.reconnects

    @property
    def stats(self) -> Stats:
        """Counters: connects, reconnects by reason, pings, retries, lost work."""
        return self._observer.stats

    def _replacing(self, reason: Reason, code: Code | None) -> float:
        """Before replacing a dead connection: give it up, and refuse when its session
        held state no replay rebuilds (SessionLostError, once: the next statement gets a
        new session). Returns when the replacement started."""
        engine = self._engine
        self._abandon(reason)
        self._check_open()  # close() came meanwhile: no new connection for a closed one
        if engine.pinned:
            raise socket_gone_error(self._adapter)
        if engine.unrestorable:
            raise session_lost_before_send(
                self._adapter, engine, self._observer, self._where(), reason, code
            )
        started = _monotonic()
        refused = _REFUSED.get(reason)
        if refused is not None:
            self._connector.leave_current(refused, started, started, self._observer, code)
        elif reason is Reason.HOST_MARKED:
            self._connector.left_marked(started)
        return started

    def _take_warned(self) -> Exception | None:
        """The warning ``_run`` kept, taken right after it returned: the operation raises
        it once the statement it came after is recorded as run (its writes counted,
        journaled for a replay)."""
        warned, self._warned = self._warned, None
        return warned

    def _replaced(
        self,
        raw: Any,
        wait_timeout: float | None,
        reason: Reason,
        code: Code | None,
        attempts: int,
        started: float,
    ) -> None:
        where = self._where()
        self._install(raw, wait_timeout)
        if self._closed:
            # close() came while connecting; checked after the install, so a close()
            # after this check finds the new connection to shut down.
            self._abandon(Reason.ERROR)
            raise closed_error(self._adapter, self._deferred)
        elapsed = _monotonic() - started
        if self._deferred:  # the first physical connection, as connect() would have made
            self._deferred = False
            self._observer.emit(Connected(self._described, attempts, elapsed))
        else:
            self._observer.emit(Reconnected(where, reason.value, code, attempts, elapsed))

    def _must_finish(self, op: Op) -> bool:
        """Whether commit() or rollback() has anything to send."""
        self._check_open()
        engine = self._engine
        if engine.lost and op is Op.COMMIT:
            raise lost_again_error(self._adapter, engine)
        self._track_driver_transaction()  # ended by the driver's own API: nothing of ours
        self._leaves_marked_host()  # nothing written to end: never sent to a marked host
        if engine.stale:
            engine.rolled_back()  # nothing can be open on a connection already given up
            return False
        return True

    def _stream_failed(self, exc: Exception, what: str) -> None:
        """A streamed operation failed: the rules as for ``executemany`` (rows may have
        been applied before the failure; it is never sent again)."""
        self._enter(what)
        try:
            self._failed(exc, Op.EXECUTEMANY, WRITE_OP, 0)
        finally:
            self._leave()

    def _asks_table(self, stmt: Statement) -> bool:
        """Whether the server must be asked about the table ``stmt`` writes first."""
        engine = self._engine
        if engine.all_roll_back or stmt.table in engine.facts.tables:
            return False  # nothing to ask, or asked already: no need for the driver's status
        return engine.asks_table(stmt, self._status(self._raw)[1]) is not None

    def _dead_before_sending(self, op: Op, stmt: Statement) -> Verdict | None:
        """Before such a write: the socket check (microseconds). A connection found
        closed proves the statement was never sent: the transaction is provably lost,
        not of unknown outcome (raises the verdict's error, or returns REPLAY)."""
        if self._probe() is not Liveness.DEAD or self._adapter.busy(self._raw):
            return None  # alive, or an unbuffered result is being read: rows, not news
        adapter = self._adapter
        exc = new_error(
            adapter,
            adapter.operational_error,
            adapter.gone_code,
            "the server closed the connection (found before sending)",
        )
        return self._failed(exc, op, stmt, 0, sent=False)

    # -- verified replay (ReplayTransaction) ---------------------------------------

    def _logged(
        self, stmt: Statement, method: str, query: Any = None, args: Any = None, cursor: Any = None
    ) -> None:
        """With replay on, after an operation succeeded: keep it for a replay while a
        transaction is open (see :meth:`Engine.logged`); ``cursor``: the proxy cursor
        whose buffered result the caller can now read."""
        engine = self._engine
        if (
            # The common case, written out: ``execute`` with parameters of plain values
            # on a buffered cursor, inside a transaction being logged.
            engine.txn_writes
            and engine.txn_log_ok
            and cursor is not None
            and args.__class__ is tuple
            and query.__class__ is str
            and method == "execute"
            and cursor._gen == self._gen
            and not cursor._unbuffered
            and not self._driver_transactions
        ):
            size = len(query)
            for arg in args:
                cls = arg.__class__
                if cls is str or cls is bytes:
                    size += len(arg)
                elif cls in _SCALARS:
                    size += 8
                else:
                    break  # perhaps one that can change: the general case below
            else:
                try:
                    result = self._adapter.result_kept(cursor._raw)
                except Exception:  # the statement ran: a log without it is never replayed
                    result = None
                if result is not None:
                    engine.log_statement(
                        stmt,
                        _new_entry(LogEntry, (stmt, method, query, args, result)),
                        size,
                        engine.last_used,
                    )
                    return
        if method == "ping":
            return  # nothing the caller could see of the data: the log stays as it is
        if self._driver_transactions and self._adapter.in_driver_block(self._raw):
            # Inside the driver's own block (psycopg's transaction()), which commits past
            # the proxy and may lose its COMMIT unseen: never replayed.
            engine.logged(stmt, None, 0, engine.last_used)
            return
        now = engine.last_used  # done() just set it: no second clock read
        implicit = False
        if not engine.txn_writes:
            if method == "autocommit" or self._status(self._raw)[1]:
                # No transaction open (autocommit(False) opens none yet): the log starts
                # over.
                engine.logged(stmt, None, 0, now)
                return
            # Autocommit off: what it read is in the transaction its first write will
            # extend (psycopg opens one before any statement; the driver says so only
            # once it wrote), and the caller may act on it: it is replayed and compared.
            implicit = True
        elif not engine.txn_log_ok and stmt.kind is not StatementKind.BEGIN:
            return  # this transaction is not replayed
        entry = None
        size = 0
        kept: Any
        try:
            if method == "begin":
                entry = _new_entry(LogEntry, (stmt, method, None, None, None))
            elif (
                cursor is not None
                and cursor._gen == self._gen
                # Unbuffered: only a result without rows (a write's) is known whole.
                and (not cursor._unbuffered or cursor._raw.description is None)
            ):
                if args.__class__ is tuple:  # the common case, written out
                    size = len(query) if query.__class__ is str else _size(query)
                    kept = args
                    for arg in args:
                        cls = arg.__class__
                        if cls is str or cls is bytes:
                            size += len(arg)
                        elif cls in _SCALARS:
                            size += 8
                        else:
                            size += _size(arg)
                            if not _immutable((arg,)):
                                kept = _UNCOPIED
                    if kept is _UNCOPIED:
                        kept = copy.deepcopy(args)
                elif args is None or not isinstance(args, Iterator):  # consumed by the first run
                    size = _size(query) + _size(args)
                    kept = _kept(args)
                else:
                    kept = _UNKEPT
                adapter = self._adapter
                digest = (
                    adapter.result_digest(cursor._raw)  # a row count summed: the cursor's
                    if method == "executemany"
                    else adapter.result_kept(cursor._raw)
                )
                if digest is not None and kept is not _UNKEPT:
                    # tuple.__new__: the named tuple's own __new__ is a Python frame more.
                    entry = _new_entry(LogEntry, (stmt, method, query, kept, digest))
        except Exception:  # the statement ran: a log without it must not be replayed
            entry = None
        engine.logged(stmt, entry, size, now, implicit)

    def _replay_failed(self, why: str, uncertain: bool = False) -> Exception:
        """The replay could not be made or diverged: the new connection is given up (the
        server rolls back what the replay ran), and the loss is the caller's to hear; of
        unknown outcome when the replay may have left something the server keeps."""
        self._adapter.discard(self._raw)
        self._engine.replay_failed(uncertain)
        return replay_failed_error(
            self._adapter, self._engine, self._observer, self._where(), why, uncertain
        )

    def _failed(
        self,
        exc: Exception,
        op: Op,
        stmt: Statement,
        resends: int,
        role: Role | None = None,
        sent: bool | None = None,
    ) -> Verdict:
        """Apply the safety rules to a failed operation: return the verdict RESEND or
        RECOVERED, raise anything else. ``role``: what the server, asked after a refusal,
        says it is; ``sent``: known without asking the driver's error."""
        adapter = self._adapter
        code = adapter.error_code(exc)
        if code is None:
            if adapter.mid_reply(exc):
                # Not the driver's error, raised as it read the rows (a decoder of the
                # caller's failing on one): the statement ran, and the rest of its reply
                # waits unread, to be taken for the next statement's. As for an
                # interruption: the connection is never used again, its loss judged.
                self._interrupted(op, stmt)
            raise exc
        engine = self._engine
        raw = self._raw
        if adapter.kept_writes(raw):
            engine.server_kept()  # named in a reply the driver read before this failure
        was_stale, last_answer = engine.stale, engine.last_used
        verdict = engine.failed(
            op,
            stmt,
            code,
            sent=not adapter.never_sent(exc) if sent is None else sent,
            autocommit=self._status(raw)[1],
            resends=resends,
            role=role,
            autocommit_known=knows_autocommit(adapter, raw),
            closing=self._closed,
        )
        if engine.stale:
            adapter.discard(raw)
            if not was_stale and engine.stale_reason is Reason.ERROR and timed_out(exc):
                now = _monotonic()
                self._connector.leave_current("silent", now, last_answer, self._observer, code)
        if verdict is Verdict.RECOVERED:
            return verdict
        where = self._where()
        error = verdict_error(verdict, exc, op, code, adapter, engine, self._observer, where)
        if error is None:
            if verdict is Verdict.RESEND:
                self._observer.emit(Retrying(where, "statement", resends + 1, 0.0, code))
            return verdict
        try:
            if error is exc:
                raise exc
            raise error from exc
        finally:
            # The traceback holds this frame: without this, the frame, the errors and the
            # connection would stay alive in a cycle until the garbage collector ran.
            del exc, error

    def _hold_sets(self, cursor: Any) -> None:
        """Result sets left unread came from unbuffered ``cursor``: where the driver can
        read them only through it, remember it (see ``_drain_left``)."""
        if self._adapter.sets_through_cursor:
            self._sets_left_cursor = weakref.ref(cursor)

    def _left_failed(self, exc: Exception, left_by: tuple[Op, Statement] | None) -> None:
        """Reading the result sets ``left_by`` left failed: judged as that write, sent
        (None: as a failed fetch). Raises the verdict's error when it has one."""
        if left_by is None:
            self._failed(exc, Op.FETCH, READ_OP, 0)
            return
        try:
            if self._failed(exc, *left_by, 0, sent=True) is Verdict.REPLAY:
                raise self._replay_failed(
                    "the connection was lost reading an earlier statement's results"
                )
        except Exception as judged:
            judged.add_note(_EARLIER)
            raise

    def _abandon(self, reason: Reason) -> None:
        """Give the physical connection up now; it is replaced before the next statement."""
        self._adapter.discard(self._raw)
        self._engine.must_replace(reason)

    def _interrupted(self, op: Op, stmt: Statement) -> None:
        """A cancellation (or ``KeyboardInterrupt``) stopped an operation that may have
        been sent: the driver connection is never used again, and the loss is recorded
        as if it had died (a transaction with writes is lost; a write's outcome is
        unknown). The interruption itself propagates unchanged."""
        try:
            _, autocommit = self._status(self._raw)  # before discard: it may need the socket
            known = knows_autocommit(self._adapter, self._raw)
        except Exception:
            autocommit = True  # unknown: a write's outcome is then unknown, never "rolled back"
            known = False
        self._adapter.discard(self._raw)
        code = self._adapter.gone_code
        verdict = self._engine.interrupted(
            op, stmt, autocommit=autocommit, autocommit_known=known, code=code
        )
        self._emit_loss(verdict, code)

    def _emit_loss(self, verdict: Verdict | None, code: Code | None) -> None:
        """Announce a loss the engine judged (a transaction, or a write's outcome)."""
        if verdict is Verdict.TRANSACTION_LOST:
            self._observer.emit(TransactionLost(self._where(), code))
        elif verdict is Verdict.OUTCOME_UNKNOWN:
            self._observer.emit(OutcomeUnknown(self._where(), code))

    def _reopens(self, reconnect: object) -> bool:
        """Whether ``ping(reconnect)`` reopens this closed connection, as the driver's would
        (``ping_reopens``: None, never; else the driver's default for ``reconnect``);
        never while close() is still aborting another thread's operation."""
        default = self._adapter.ping_reopens
        if default is None or self._aborting:
            return False
        return default if reconnect is None else bool(reconnect)

    def _reopen(self, what: str = "ping") -> None:
        if not self._claim(False):
            self._observer.stats.concurrent_use_refused += 1
            raise concurrent_use_error(self._adapter, self._in_flight, what)
        self._in_flight = what
        try:
            if self._closed:
                self._streamer = self._stream_cursor = None  # unread: gone with the session
                code = self._adapter.gone_code
                verdict = self._engine.reopened(code)
                self._closed = False
                self._hold_probe_again()
                self._emit_loss(verdict, code)
        finally:
            self._leave()

    def _hold_probe_again(self) -> None:
        """Reopened after close(): keep the creator's background probe going again."""
        connector = self._connector
        hold = connector.probe_hold
        prober = connector.memory.prober if connector.memory is not None else None
        if hold is not None and not hold.alive and isinstance(prober, Prober):
            connector.probe_hold = prober.hold(self, self._adapter)

    def close(self) -> None:
        """Close the connection; closing twice is harmless.

        Called while another thread (or task) is inside an operation, it aborts that
        operation instead of waiting for it: the operation fails at once under the
        safety rules (nothing is sent again; a write's outcome is unknown)."""
        hold = self._connector.probe_hold
        if hold is not None:
            hold()  # once (a finalizer), even when already closed (a failed connect())
        if self._closed:
            return
        if not self._claim(False):
            self._closed = True
            self._aborting = True
            self._abort_in_flight()
            self._finish_abort()  # in case the operation ended meanwhile
            return
        self._in_flight = "close"
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
            self._release()

    def _abort_in_flight(self) -> None:
        """Make the operation another thread is running fail at once: shut the socket
        down under it (closing it there could hand its descriptor to a new file while
        the driver still uses the number)."""
        if not self._engine.stale:
            self._adapter.shut_down(self._raw)

    def _finish_abort(self) -> None:
        """After close() aborted an operation, give the physical connection up once
        nobody uses it. Both close() and the operation, as it leaves, call this: the
        guard lets whichever comes last do it, once."""
        if not self._claim(False):
            return  # still in use: whoever holds it calls this as it leaves
        try:
            if self._aborting:
                self._aborting = False
                if not self._engine.stale:
                    self._abandon(Reason.ERROR)
        finally:
            self._release()

    @property
    def open(self) -> bool:
        """True until :meth:`close`: a dropped physical connection is replaced, not closed."""
        return not self._closed

    def _check_connect(self) -> None:
        """Refuse ``connect()`` but where the driver's reopens its own connection
        (PyMySQL's), and there on a connection that is open: it would drop a live
        session (PyMySQL's leaves the old socket open); a lost one is replaced anyway."""
        if not self._adapter.reconnects_itself:
            raise new_error(
                self._adapter,
                self._adapter.programming_error,
                0,
                "resilient_dbapi opens and replaces the physical connection itself; "
                "connect() on a resilient connection is not allowed (use "
                "resilient_dbapi.connect())",
            )
        if not self._closed and not self._engine.stale:
            raise new_error(
                self._adapter,
                self._adapter.programming_error,
                0,
                "connect(): the connection is open already; resilient_dbapi replaces a "
                "lost physical connection itself (close() first to start a new session)",
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("stale" if self._engine.stale else "open")
        return (
            f"<resilient_dbapi.{type(self).__name__} {self._described} "
            f"{state} reconnects={self.reconnects}>"
        )


def check_tls(adapter: Inspector, raw: Any, engine: Engine) -> None:
    """Refuse a new connection without TLS once one sharing its engine's TLS floor (the
    same ``connect()``, ``creator()`` or pool) used it: some drivers fall back to plain
    text when the server stops offering TLS. The refusal is never retried."""
    used = adapter.uses_tls(raw)
    if used is not None and not engine.tls_allows(used):
        raise tls_downgrade_error(adapter)


class AsyncConnectionBase(ConnectionBase):
    """What only the asyncio connection has that never waits (aiomysql's API); the
    generated sync twin derives from :class:`ConnectionBase` instead."""

    def _abort_in_flight(self) -> None:
        """Close the transport under the task in flight, as aiomysql's close() does (its
        pool's terminate() relies on it): one thread, so no descriptor can be reused
        under it."""
        if not self._engine.stale:
            self._abandon(Reason.ERROR)

    # Tasks share a thread: the reader of an unbuffered result is a task.
    _owner: Callable[[], object] = staticmethod(asyncio.current_task)

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


def knows_autocommit(adapter: Inspector, raw: Any) -> bool:
    """Whether the adapter's autocommit flag is the driver's, not a guess (the generic
    fallback guesses PEP 249's default, off, for a driver that does not say)."""
    return adapter.knows_autocommit(raw)


_EARLIER = (
    "The outcome is that of the CALL (or several statements in one text) before: the "
    "connection died while their last replies were read; this operation was not sent."
)


def replay_call(
    adapter: Adapter | AsyncAdapter, raw: Any, method: str, payload: Any
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """The call that replays one journal entry (other than ``setattr``) on a new driver
    connection, and its arguments."""
    if method == "execute":
        return adapter.execute, (raw, *payload)
    if method == "autocommit":
        return adapter.set_autocommit, (raw, payload)
    if method == "select_db":
        return adapter.select_db, (raw, payload)
    name, args = payload  # a driver method that set session state, with its arguments
    return getattr(raw, name), tuple(args)


_UNKEPT = object()
_UNCOPIED = object()
_SCALARS = frozenset({str, bytes, int, float, type(None), bool})
_new_entry = tuple.__new__


def _immutable(args: tuple[Any, ...]) -> bool:
    """Whether nothing in ``args`` can change after the call (checked without hashing
    the texts: most parameters are numbers and strings)."""
    for arg in args:
        if arg.__class__ not in _SCALARS:
            try:
                hash(arg)
            except TypeError:
                return False
    return True


def _size(value: Any) -> int:
    """About how many bytes ``value`` (a text, or parameters) takes: texts and bytes by
    their length, containers by what they hold, anything else 8 (a replay's limit, not an
    accounting; nothing is iterated that a second pass would find empty)."""
    if value is None:
        return 0
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(item) for item in value.values())
    if isinstance(value, tuple | list | set | frozenset):
        return sum(_size(item) for item in value)
    return 8


def _kept(args: Any) -> Any:
    """Parameters as they are now, for a replay later: the caller may change a list or a
    dict it passed once the statement returned."""
    try:
        hash(args)  # a tuple of numbers and strings: nothing in it can change
    except TypeError:
        return copy.deepcopy(args)
    return args
