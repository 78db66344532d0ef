# Generated from resilient_dbapi/_cursor_async.py by tools/async_to_sync.py: do not edit.
# Change the asyncio source and run `python tools/async_to_sync.py`.
"""The resilient cursor.

``_cursor_async.py`` (asyncio) is the source of ``cursor.py`` (sync), which
``tools/async_to_sync.py`` generates from it; a test checks that it is current. Code
under ``if True:  # ASYNC`` is the asyncio version, its ``else:`` branch the sync one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._cursor_base import CursorBase, cursor_kind
from .adapters import Liveness
from .engine import Op, Verdict
from .statements import CALL_OP, READ_OP, StatementKind, remember, statement

if TYPE_CHECKING:
    from .connection import ResilientConnection

from collections.abc import Iterator

__all__ = ["ResilientCursor"]

_CALLPROC_STATE = frozenset({"user variables (callproc arguments)"})
_ALIVE = Liveness.ALIVE
_DEAD = Liveness.DEAD
_READ = StatementKind.READ
_WRITE = StatementKind.WRITE
_SESSION = StatementKind.SESSION
_monotonic = time.monotonic


class ResilientCursor(CursorBase):
    """A DB-API 2.0 cursor on a resilient connection.

    A cursor made before the connection was replaced moves to the new connection at its
    next ``execute``. Other attributes of the driver's cursor pass through.
    """

    _conn: ResilientConnection

    @classmethod
    def create(
        cls, conn: ResilientConnection, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> ResilientCursor:
        """A cursor made by the driver's ``cursor(*args, **kwargs)``, and made again the
        same way on every new physical connection."""
        raw = conn._raw.cursor(*args, **kwargs)
        known = conn._cursor_kinds.get(type(raw))
        if known is None:
            known = cursor_kind(cls, conn, raw)
        made: ResilientCursor = known[0](conn, args, kwargs, raw, known[1])
        return made

    def _current(self) -> Any:
        """The driver cursor on the connection's current physical connection."""
        if self._gen == self._conn._gen:
            return self._raw
        conn = self._conn
        raw = conn._raw.cursor(*self._cursor_args, **self._cursor_kwargs)
        return self._bind(raw, conn._adapter.unbuffered(raw))

    # -- PEP 249 ------------------------------------------------------------------

    @property
    def connection(self) -> ResilientConnection:
        return self._conn

    def execute(self, query: Any, args: Any = None) -> Any:
        """The hot path. A statement on a connection that needs no check goes straight
        to the driver; any other goes through the connection's ``_run``, as does a
        resend. One frame: a call costs what the whole check does."""
        if self._closed:
            self._check_open()
        conn = self._conn
        try:
            stmt = conn._statements.get(query)
        except TypeError:  # not hashable (psycopg's sql.Composed): never cached
            stmt = None
        if stmt is None:
            stmt = remember(query, conn._postgres)
        if not conn._claim(False):
            conn._enter("execute", self)  # raises ConcurrentUseError
        conn._in_flight = "execute"
        try:
            if conn._streamer is not None:
                conn._stream_check("execute", self)
            engine = conn._engine
            if conn._driver_transactions:
                conn._track_driver_transaction()
            # One clock read per statement: idle time counts from the statement's start,
            # which at worst costs a needless ping after a statement longer than `idle`.
            now = _monotonic()
            kind = stmt.kind
            txn_writes = engine.txn_writes
            warned = None
            if (
                conn._closed
                or engine.lost
                or (
                    txn_writes
                    and kind is not _READ
                    and engine.unproven(stmt)
                    # The socket check _run makes before such a write: only a connection
                    # found closed needs its path (the write was provably never sent).
                    and conn._probe() is _DEAD
                )
                or (
                    # The server asked about this table already (the common case) needs no call.
                    stmt.table is not None
                    and stmt.table not in engine.facts.tables
                    and conn._asks_table(stmt)
                )
                or (
                    not txn_writes
                    and (
                        engine.stale
                        or now >= engine.next_check_at
                        or (
                            # Only what may be sent again (a read, a setting, BEGIN)
                            # skips the socket check within the window: never what
                            # cannot be taken back.
                            (not stmt.resendable or now - engine.last_used >= conn._skip_recent)
                            and conn._probe() is not _ALIVE
                        )
                        or (conn._gone is not None and conn._gone())
                    )
                )
                # Result sets the last statement left: read first (see _read_left_sets), so
                # that a failure reading them is never taken for this statement's.
                or conn._sets_left
                # A question about the history of the session this one replaced (above,
                # only outside a transaction with writes): refused in _run (see
                # Engine.asks_lost_history).
                or (
                    stmt.history
                    and (engine.history_lost or (stmt.insert_id and engine.insert_id_lost))
                )
            ):
                result = conn._run(Op.EXECUTE, stmt, _send_execute, self, query, args)
                warned = conn._take_warned()
            else:
                try:
                    if self._gen == conn._gen:
                        result = self._raw.execute(query, args)
                    else:
                        result = (self._current()).execute(query, args)
                except Exception as exc:
                    if conn._adapter.warned(exc):  # after the statement ran: see _run
                        engine.done(stmt, *conn._status(conn._raw), now)
                        warned = exc
                        result = None
                    else:
                        if conn._judge(exc, Op.EXECUTE, stmt, 0) is Verdict.RECOVERED:
                            return 0  # a ROLLBACK or an empty COMMIT: done by the end
                        result = conn._run(
                            Op.EXECUTE, stmt, _send_execute, self, query, args, resends=1
                        )
                        warned = conn._take_warned()
                except BaseException:
                    conn._interrupted(Op.EXECUTE, stmt)
                    raise
                else:
                    in_trans, autocommit = conn._status(conn._raw)
                    if (
                        kind is _READ
                        and not in_trans
                        and not txn_writes
                        # With replay on, a read under autocommit off is logged.
                        and (autocommit or engine.replay is None)
                    ):
                        engine.used(now)  # all done() would change for a plain read
                        return result
                    engine.done(stmt, in_trans, autocommit, now)
            if engine.replay is not None:
                conn._logged(stmt, "execute", query, args, self)
            if kind is _WRITE or kind is _SESSION:  # all _note() looks at
                conn._note(stmt, query, args, self)
            if warned is not None:
                raise warned
            return result
        finally:
            if self._unbuffered or conn._streamer is not None:
                conn._stream_seen(self, self._unbuffered)
            conn._release()
            if conn._aborting:
                conn._finish_abort()

    def executemany(self, query: Any, args: Any) -> Any:
        self._check_open()
        conn = self._conn
        stmt = statement(query, conn._postgres)
        conn._enter("executemany", self)
        try:
            result = conn._run(Op.EXECUTEMANY, stmt, _send_executemany, self, query, args)
            warned = conn._take_warned()
            if conn._engine.replay is not None:
                conn._logged(stmt, "executemany", query, args, self)
            conn._note(stmt, query, args, self)
            if warned is not None:
                raise warned
            return result
        finally:
            conn._leave(self)

    def callproc(self, procname: str, args: Any = ()) -> Any:
        self._check_open()
        conn = self._conn
        conn._enter("callproc", self)
        try:
            result = conn._run(Op.CALLPROC, CALL_OP, _send_callproc, self, procname, args)
            warned = conn._take_warned()
            # The driver passes the arguments through user variables (@_proc_0, ...).
            engine = conn._engine
            if engine.replay is not None:
                conn._logged(CALL_OP, "callproc")  # never replayed
            engine.state_made(_CALLPROC_STATE)
            if engine.insert_id_lost:
                engine.wrote_on_new_session()
            engine.wrote_in_transaction(None, conn._adapter.kept_writes(conn._raw))
            if conn._adapter.pending(conn._raw):
                conn._sets_left = True
                conn._sets_left_by = (Op.CALLPROC, CALL_OP)
                if self._unbuffered:
                    conn._hold_sets(self)
            if warned is not None:
                raise warned
            return result
        finally:
            conn._leave(self)

    def _reading(self, read: Callable[..., Any], *args: Any) -> Any:
        """A read of results that may touch the network (unbuffered rows, next result)."""
        self._check_open()
        conn = self._conn
        conn._enter("fetch", self)
        try:
            return read(*args)
        except Exception as exc:
            if self._gen != conn._gen:
                raise  # a result of a connection replaced since: nothing else is affected
            conn._failed(exc, Op.FETCH, READ_OP, resends=0)
            raise  # _failed returns only to resend, which a fetch never is
        except BaseException:
            if self._gen == conn._gen:
                conn._interrupted(Op.FETCH, READ_OP)
            raise
        finally:
            conn._leave(self)

    def fetchone(self) -> Any:
        return self._reading(self._raw.fetchone)

    def fetchmany(self, size: int | None = None) -> Any:
        if size is None:
            return self._reading(self._raw.fetchmany)
        return self._reading(self._raw.fetchmany, size)

    def fetchall(self) -> Any:
        return self._reading(self._raw.fetchall)

    def nextset(self) -> Any:
        return self._reading(self._raw.nextset)

    def scroll(self, value: int, mode: str = "relative") -> Any:
        return self._reading(self._raw.scroll, value, mode)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn = self._conn
        if self._gen != conn._gen:
            return  # its physical connection is gone already
        # _enter() and _leave() written out, as in execute: a cursor per request closes
        # one per request.
        if not conn._claim(False):
            conn._enter("cursor close", self)  # raises ConcurrentUseError
        else:
            conn._in_flight = "cursor close"
            if conn._streamer is not None:
                try:
                    conn._stream_check("cursor close", self)
                except BaseException:
                    conn._release()
                    raise
        try:
            self._raw.close()  # an unbuffered cursor reads its remaining rows here
        except Exception as exc:
            code = conn._adapter.error_code(exc)
            if code is None and conn._adapter.mid_reply(exc):
                conn._interrupted(Op.FETCH, READ_OP)  # a row of a set it read: see _failed
                raise
            if code is None or not conn._engine.is_dead(code):
                raise
            # The connection died while the cursor drained rows nobody wanted. _failed
            # records it: the connection is replaced at the next checkout, and a lost
            # transaction is reported by the next statement on the connection.
            with contextlib.suppress(Exception):
                conn._failed(exc, Op.FETCH, READ_OP, resends=0)
        except BaseException:
            conn._interrupted(Op.FETCH, READ_OP)
            raise
        finally:
            if self._unbuffered or conn._streamer is not None:
                conn._stream_seen(self)
            conn._release()
            if conn._aborting:
                conn._finish_abort()

    def fetchall_unbuffered(self) -> Iterator[Any]:
        """PyMySQL's lazy row iterator, each row read under the rules of ``fetchone``."""
        return iter(self.fetchone, None)

    def read_next(self) -> Any:
        return self._reading(self._raw.read_next)

    def __iter__(self) -> ResilientCursor:
        return self  # PEP 249: the cursor is its own iterator

    def __next__(self) -> Any:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def __enter__(self) -> ResilientCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _send_executemany(
    conn: ResilientConnection, cursor: ResilientCursor, query: Any, args: Any
) -> Any:
    return (cursor._current()).executemany(query, args)


def _send_callproc(conn: ResilientConnection, cursor: ResilientCursor, name: str, args: Any) -> Any:
    return (cursor._current()).callproc(name, args)


def _send_execute(conn: Any, cursor: ResilientCursor, query: Any, args: Any) -> Any:
    return (cursor._current()).execute(query, args)
