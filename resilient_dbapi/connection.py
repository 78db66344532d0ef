# Generated from resilient_dbapi/_connection_async.py by tools/async_to_sync.py: do not edit.
# Change the asyncio source and run `python tools/async_to_sync.py`.
"""The resilient connection: a PEP 249 proxy driven by the engine.

``_connection_async.py`` (asyncio) is the source of ``connection.py`` (sync), which
``tools/async_to_sync.py`` generates from it; a test checks that it is current. Code
under ``if True:  # ASYNC`` is the asyncio version, its ``else:`` branch the sync one.
This module holds the public surface (PEP 249, the drivers' own methods, ``connect()``);
how each operation is carried out is ``_operations_async.py``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from . import _telemetry, adapters
from ._connector import Request, WrongRole, first_adapter
from ._cursor_base import cursor_kind
from ._forwarding import forwarding_class
from ._opening import Connector, prepare
from ._operations import Operations
from ._probe import Prober
from .adapters import Adapter, Inspector
from .cursor import ResilientCursor
from .engine import Op, Reason
from .error_kinds import Code
from .events import Connected, Listener, Observer
from .hosts import HostProbe
from .policies import Policy
from .statements import (
    AUTOCOMMIT_OP,
    BEGIN_OP,
    COMMIT_OP,
    HISTORY_OP,
    READ_OP,
    ROLLBACK_OP,
    SESSION_OP,
    StatementKind,
    statement,
)

__all__ = ["ResilientConnection", "connect", "creator"]

_READ = StatementKind.READ
_monotonic = time.monotonic


class ResilientConnection(Operations):
    """A DB-API 2.0 connection that replaces its physical connection when that is safe.

    Make one with :func:`connect`. Driver-specific attributes (``select_db``,
    ``insert_id``, ``thread_id``, ``escape`` ...) pass through to the current driver
    connection, which :attr:`raw` returns.
    """

    # -- PEP 249 ------------------------------------------------------------------

    def cursor(self, *args: Any, **kwargs: Any) -> ResilientCursor:
        """A :class:`ResilientCursor`; the arguments are the driver's (a cursor class
        for PyMySQL, ``row_factory=`` for psycopg ...)."""
        if self._closed:
            self._check_open()
        if self._gone is not None and self._leaves_marked_host():
            # mysql-connector pings in cursor(): the replacement comes first.
            return self._guarded(
                "cursor", Op.EXECUTE, READ_OP, ResilientCursor.create, args, kwargs
            )
        # ResilientCursor.create() written out: a cursor per request makes one per
        # request.
        try:
            raw = self._raw.cursor(*args, **kwargs)
        except Exception as exc:
            if self._adapter.error_code(exc) is None:
                raise
            raw = None  # (outside the handler: no error chained to the next)
        if raw is None:
            # Some drivers ask the server for a cursor (mysql-connector pings first):
            # a dead connection is replaced as for a read, when that is safe.
            return self._guarded(
                "cursor", Op.EXECUTE, READ_OP, ResilientCursor.create, args, kwargs
            )
        known = self._cursor_kinds.get(type(raw))
        if known is None:
            known = cursor_kind(ResilientCursor, self, raw)
        made: ResilientCursor = known[0](self, args, kwargs, raw, known[1])
        return made

    def commit(self) -> None:
        self._enter("commit")
        try:
            self._finish(Op.COMMIT, COMMIT_OP)
        finally:
            self._leave()

    def rollback(self) -> None:
        self._enter("rollback")
        try:
            self._check_open()
            engine = self._engine
            if not engine.rollback_needs_sending():
                return
            # The connection lives (or nothing was lost): roll back for real, and only
            # then acknowledge a loss (the server refused a COMMIT).
            try:
                self._finish(Op.ROLLBACK, ROLLBACK_OP)
            except BaseException:
                engine.rollback_failed()
                raise
            engine.rolled_back()
        finally:
            self._leave()

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
        # The stand-in made at the start never asked credentials: a fresh one does.
        fresh = not self._deferred or self._connector.credentials is not None
        raw = self._connector.deferred() if fresh else self._raw
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

    def ping(self, reconnect: object = None) -> None:
        """Check the connection with a round trip, replacing it when that is safe.

        On an open connection the policies decide, whatever ``reconnect`` says. Raises
        if the connection is dead inside a transaction with writes. After ``close()``,
        it opens a new session with the connection's settings where the driver's would
        reconnect: ``reconnect=True`` (aiomysql's default).
        """
        if self._closed and self._reopens(reconnect):
            self._reopen()
        self._guarded("ping", Op.EXECUTE, READ_OP, _send_ping, self._ping_timeout)

    def begin(self) -> None:
        self._guarded("begin", Op.EXECUTE, BEGIN_OP, _send_call, "begin", ())

    def autocommit(self, value: bool) -> None:
        """Set autocommit; the setting is re-applied to every new physical connection."""
        value = bool(value)
        # Turning autocommit on commits an open transaction. Should the connection die
        # with nothing written, the next connection gets the setting all the same.
        op, stmt = (Op.COMMIT, AUTOCOMMIT_OP) if value else (Op.EXECUTE, READ_OP)
        journal = ("set autocommit", ("autocommit", value))
        self._guarded("autocommit", op, stmt, _send_autocommit, value, journal=journal)

    def select_db(self, db: str) -> None:
        """Change the default database; re-applied to every new physical connection."""
        journal = ("use", ("select_db", db))
        self._guarded("select_db", Op.EXECUTE, READ_OP, _send_select_db, db, journal=journal)

    # -- driver methods that send: guarded and tracked like execute() ---------------

    def query(self, sql: Any, unbuffered: bool = False) -> Any:
        """The driver's ``query()``, under the same rules as ``cursor.execute()``."""
        stmt = statement(sql, self._postgres)
        self._enter("query")
        try:
            result = self._run(Op.EXECUTE, stmt, _send_query, sql, unbuffered)
            warned = self._take_warned()
            if self._engine.replay is not None:
                self._logged(stmt, "query")  # past the log: never replayed
            if stmt.kind is not _READ:
                self._note(stmt, sql, None)
            if warned is not None:
                raise warned
            return result
        finally:
            self._leave()

    def next_result(self, unbuffered: bool = False) -> Any:
        """The driver's ``next_result()``: reads the next result of a multi-result query."""
        self._enter("next_result")
        try:
            return self._fetch(self._raw.next_result, *((unbuffered,) if unbuffered else ()))
        finally:
            self._leave()

    def show_warnings(self) -> Any:
        return self._guarded(
            "show_warnings", Op.EXECUTE, HISTORY_OP, _send_call, "show_warnings", ()
        )

    def kill(self, thread_id: int) -> Any:
        """``KILL`` another connection (idempotent: sent again if the connection drops)."""
        return self._guarded("kill", Op.EXECUTE, SESSION_OP, _send_call, "kill", (thread_id,))

    def set_character_set(self, charset: str, collation: str | None = None) -> None:
        """PyMySQL's ``set_character_set()``; re-applied to every new connection."""
        self._set_names("set_character_set", (charset, collation))

    def set_charset(self, charset: str) -> None:
        """The driver's ``set_charset()``; re-applied to every new connection."""
        self._set_names("set_charset", (charset,))

    def _set_names(self, method: str, args: tuple[Any, ...]) -> None:
        journal = ("set names", ("call", (method, args)))
        self._guarded(method, Op.EXECUTE, SESSION_OP, _send_call, method, args, journal=journal)

    def __enter__(self) -> ResilientConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# What the guarded methods send, once the checks before it are done.


def _send_query(conn: ResilientConnection, sql: Any, unbuffered: bool) -> Any:
    if unbuffered:
        return conn._raw.query(sql, unbuffered)
    return conn._raw.query(sql)  # mysqlclient's query() takes the statement alone


def _send_call(conn: ResilientConnection, method: str, args: tuple[Any, ...]) -> Any:
    return getattr(conn._raw, method)(*args)


def _send_ping(conn: ResilientConnection, timeout: float) -> None:
    started = _monotonic()
    try:
        conn._adapter.ping(conn._raw, timeout)
    except Exception:
        conn._pinged(False, started)
        raise
    conn._pinged(True, started)


def _send_autocommit(conn: ResilientConnection, value: bool) -> None:
    conn._adapter.set_autocommit(conn._raw, value)


def _send_select_db(conn: ResilientConnection, db: str) -> None:
    conn._adapter.select_db(conn._raw, db)


# -- making connections -------------------------------------------------------------


def connect(
    driver_connect: Callable[..., Any],
    *args: Any,
    policies: Sequence[Policy] | str | None = None,
    on_connect: Sequence[str] | None = None,
    listeners: Sequence[Listener] | None = None,
    hosts: Any = None,
    target: str | None = None,
    credentials: Callable[[dict[str, Any]], Any] | None = None,
    probe: HostProbe | None = None,
    **kwargs: Any,
) -> ResilientConnection:
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

    ``credentials(arguments)`` is called before every physical connect with a copy of
    the keyword arguments about to be passed (each host's ``host`` and ``port`` with
    ``hosts=``; otherwise those given, if any) and returns those to use instead, e.g.
    ``{"password": token}`` for a rotated password or a short-lived token (an IAM token
    expires after 15 minutes): only how to log in (user, password, TLS client files),
    never which server. With ``resilient_dbapi.aio`` it may be a coroutine function.

    ``probe=HostProbe(interval, timeout)`` (with ``hosts=``) probes the hosts from a
    thread while the connection is open (see :class:`~resilient_dbapi.HostProbe`).
    """
    checked = (
        driver_connect,
        args,
        kwargs,
        policies,
        on_connect,
        listeners,
        hosts,
        target,
        credentials,
        probe,
    )
    return _open(Request.checked(*checked))


def creator(
    driver_connect: Callable[..., Any],
    *args: Any,
    policies: Sequence[Policy] | str | None = None,
    on_connect: Sequence[str] | None = None,
    listeners: Sequence[Listener] | None = None,
    hosts: Any = None,
    target: str | None = None,
    credentials: Callable[[dict[str, Any]], Any] | None = None,
    probe: HostProbe | None = None,
    **kwargs: Any,
) -> Callable[[], ResilientConnection]:
    """A zero-argument factory of resilient connections, for a pool or an ORM.

    For example ``sqlalchemy.create_engine("mysql+pymysql://", creator=creator(
    pymysql.connect, host=..., user=...))``, or with ``resilient_dbapi.aio.creator``,
    ``create_async_engine("mysql+aiomysql://", async_creator=...)``. With ``hosts=``,
    the connections it makes share what they learn about the hosts (a dead primary is
    tried last by all of them). ``credentials`` as for :func:`connect`: called before
    each physical connect of each connection. ``probe`` as for :func:`connect`: one
    thread for all of them, while any is open.
    """
    checked = (
        driver_connect,
        args,
        kwargs,
        policies,
        on_connect,
        listeners,
        hosts,
        target,
        credentials,
        probe,
    )
    request = Request.checked(*checked)
    request.engine()  # the policies checked now, not at the first connect

    def make() -> ResilientConnection:
        return _open(request)

    make.__qualname__ = make.__name__ = "resilient_creator"
    return make


def _open(request: Request) -> ResilientConnection:
    telemetry = _telemetry.active()
    pool = ""
    if telemetry is None:
        observer = Observer(request.listeners)
    else:
        pool = _telemetry.pool_name(request)
        observer = Observer((*request.listeners, telemetry.listener(pool)))
    engine = request.engine()
    connector = Connector(
        request.driver_connect,
        request.args,
        request.kwargs,
        request.memory,
        request.autocommit,
        request.credentials,
    )

    def first_setup(raw: Any) -> tuple[Adapter, float | None]:
        adapter = first_adapter(raw, engine, adapters.adapter_for)
        return adapter, prepare(adapter, raw, request.on_connect, engine, request.autocommit)

    if request.deferred:
        raw = connector.deferred(ask=False)  # see _replace_on
        adapter = first_adapter(raw, engine, adapters.adapter_for)
        cls = forwarding_class(ResilientConnection, raw, mixins=_mixins(adapter, telemetry))
        made = cls(raw, adapter, engine, connector, None, request.on_connect, observer, True)
        _traced(made, telemetry, pool, request)
        _hold_probe(request, made, adapter)
        return made
    started = _monotonic()
    raw, (adapter, wait_timeout), attempts = connector.open(
        engine, first_setup, observer, request.where
    )
    cls = forwarding_class(ResilientConnection, raw, mixins=_mixins(adapter, telemetry))
    conn = cls(raw, adapter, engine, connector, wait_timeout, request.on_connect, observer)
    _traced(conn, telemetry, pool, request)
    observer.emit(Connected(adapter.describe(raw), attempts, _monotonic() - started))
    _hold_probe(request, conn, adapter)
    return conn


def _mixins(adapter: Inspector, telemetry: _telemetry.Telemetry | None) -> tuple[type, ...]:
    if telemetry is None:
        return adapter.surface
    return (_telemetry.TracedConnection, *adapter.surface)


def _traced(
    conn: ResilientConnection,
    telemetry: _telemetry.Telemetry | None,
    pool: str,
    request: Request,
) -> None:
    """A connection opened under a tracing integration: its operations and cursors
    traced, and itself counted."""
    if telemetry is not None:
        conn._telemetry = telemetry
        conn._cursor_mixins = (_telemetry.TracedCursor,)
        telemetry.track(conn, pool, _telemetry.namespace(request))


def _hold_probe(request: Request, conn: ResilientConnection, adapter: Inspector) -> None:
    """Keep the creator's background probe going while ``conn`` is open (when asked)."""
    prober = Prober.of(request)
    if prober is not None:
        try:
            conn._connector.probe_hold = prober.hold(conn, adapter)
        except BaseException:
            conn.close()
            raise
