"""The adapter contract: :class:`Adapter` (sync) and :class:`AsyncAdapter` name every
hook a proxy calls, and :class:`AdapterBase` gives each optional one its default. A
third-party adapter subclasses :class:`AdapterBase` and is registered with
:func:`resilient_dbapi.adapters.register`."""

from __future__ import annotations

import contextlib
import enum
import hashlib
import math
from collections.abc import Callable
from typing import Any, Protocol

from ..error_kinds import Code, ErrorTable
from ..hosts import Role
from . import _sockets

__all__ = [
    "KEPT_ROWS",
    "Adapter",
    "AdapterBase",
    "AsyncAdapter",
    "AutocommitProperty",
    "CommitOnExit",
    "CommitThenCloseOnExit",
    "DriverSurface",
    "Inspector",
    "Liveness",
    "rows_digest",
]

KEPT_ROWS = 64
"""Results up to this many rows are kept in a digest as they are (comparing them costs
less than hashing them); larger ones as :func:`rows_digest`."""


def rows_digest(rows: tuple[Any, ...]) -> bytes:
    """A digest of the text of ``rows``, for a result of more than :data:`KEPT_ROWS`."""
    return hashlib.blake2b(repr(rows).encode(), digest_size=16).digest()


class Liveness(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNSURE = "unsure"
    """The cheap check cannot tell: ask the server (a ping)."""


class Inspector(Protocol):
    """What a proxy needs from a driver besides round trips."""

    name: str
    errors: ErrorTable
    operational_error: type[Exception]
    interface_error: type[Exception]
    programming_error: type[Exception]
    closed_cursor_error: type[Exception] | None
    """What the driver raises when a closed cursor is used (None: its
    ``ProgrammingError``, as PyMySQL, aiomysql, mysqlclient and sqlite3 do)."""
    ping_reopens: bool | None
    """Whether the driver's ``ping()`` without ``reconnect=`` reopens a closed connection
    (aiomysql's and PyMySQL 1.1's do; PyMySQL 1.2's only with ``reconnect=True``); None:
    its ``ping()`` never reopens one (mysqlclient, and drivers without a ``ping``)."""
    gone_code: Code
    """The driver's code for "the connection is gone", for errors found before sending."""
    reconnects_itself: bool
    """Whether the driver's connection has ``connect(sock=None)`` that opens it again
    (PyMySQL's, with ``defer_connect=True`` or after ``close()``)."""
    postgres: bool
    """Whether the server speaks PostgreSQL's SQL (its built-in functions differ)."""
    transactional_only: bool
    """Whether every table of the server rolls back (PostgreSQL, SQLite): a transaction
    lost with its connection is then provably rolled back without the server's word."""
    says_transaction: bool
    """Whether :meth:`status` reports the server's own "transaction open" flag from its
    last OK reply (a MySQL server's status flags, as PyMySQL keeps them): then, after a
    setting, BEGIN, COMMIT or ROLLBACK, it rather than their text says whether a
    transaction is open."""

    def owns(self, raw: object) -> bool:
        """Whether ``raw`` is a connection of this driver."""

    def owns_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` is an error of this driver."""

    def probe(self, raw: Any) -> Callable[[], Liveness]:
        """A zero-argument, zero-round-trip liveness check of ``raw``'s current socket."""

    def known_dead(self, raw: Any) -> Callable[[], bool] | None:
        """A check of ``raw`` that costs no system call (True: certainly dead), run before
        every statement; None if the driver keeps no such state."""

    def status(self, raw: Any) -> tuple[bool, bool]:
        """``(in_transaction, autocommit)`` as the server last reported them."""

    def ended_unseen(self, raw: Any) -> bool:
        """With autocommit off, whether the driver shows no transaction open where the
        proxy saw one: ended by the driver's own API (psycopg's ``transaction()``)."""

    def in_driver_block(self, raw: Any) -> bool:
        """Whether a transaction block of the driver's own API is open on ``raw``
        (psycopg's ``transaction()``): it commits past the proxy."""

    def busy(self, raw: Any) -> bool:
        """Whether a result is still being read (an unbuffered cursor mid-stream)."""

    def pending(self, raw: Any) -> bool:
        """Whether the last statement left result sets unread (a CALL's, several
        statements in one text): the driver reads them before its next command, and
        until then their bytes wait on the socket (see ``drain``)."""

    def discard(self, raw: Any) -> None:
        """Close ``raw`` at once, sending nothing, never raising."""

    def error_code(self, exc: BaseException) -> Code | None:
        """The driver's error code of ``exc``, or None if it is not a driver error."""

    def never_sent(self, exc: BaseException) -> bool:
        """Whether ``exc`` proves the failed command never reached the server."""

    def unbuffered(self, cursor: Any) -> bool:
        """Whether fetching from ``cursor`` reads from the network."""

    def result_digest(self, cursor: Any) -> object:
        """What the caller can see of the buffered result ``cursor`` holds after a
        statement (rows, row count, last insert id, description, warnings), as a value a
        verified replay compares with ``==``; None where the driver's result cannot be
        read (then a transaction that ran it is never replayed)."""

    def result_kept(self, cursor: Any) -> object:
        """What a replay log keeps of ``cursor``'s result after ``execute``: its
        :meth:`result_digest`, or (cheaper per statement) an object the driver never
        changes once read, digested by :meth:`kept_digest` only at a replay."""

    def kept_digest(self, kept: Any) -> object:
        """:meth:`result_digest` of what :meth:`result_kept` kept."""

    def describe(self, raw: Any) -> str:
        """Where ``raw`` is connected, for ``repr()`` and logs: never a secret."""

    # What :class:`AdapterBase` gives a default for: override where the driver differs.

    idle_setting: str
    in_process: bool
    connect_timeout_argument: str | None

    def probe_arguments(self, timeout: float) -> dict[str, Any] | None:
        """The ``connect()`` arguments bounding a background probe (None: none)."""

    opens_transactions: bool
    sets_through_cursor: bool

    def warned(self, exc: BaseException) -> bool:
        """Whether ``exc`` was raised after the statement ran, its reply read whole: for
        the server's warnings (:attr:`AdapterBase.warned_after`, or what the driver's
        exception shows of it), or for a row the driver could not decode once it had
        stored them all."""

    def mid_reply(self, exc: BaseException) -> bool:
        """Whether ``exc``, not an error of the driver, was raised while the driver read
        a statement's rows off the connection (a decoder of the caller's failing on a
        row): the statement reached the server, and the rest of its reply is unread."""

    replays: bool
    """Whether :meth:`result_digest` reads this driver's results: only then is a lost
    transaction replayed (``ReplayTransaction``)."""
    replay_cursor: tuple[tuple[Any, ...], dict[str, Any]]
    """The arguments of the driver's ``cursor()`` that make the cursor a replay runs
    on: buffered, whatever the connection's default cursor class."""

    @property
    def reads_role(self) -> bool:
        """Whether :meth:`role` can tell a primary from a replica."""

    surface: tuple[type, ...]
    cursor_surface: tuple[type, ...]

    def make_error(self, cls: type[Exception], code: Any, message: str) -> Exception:
        """An instance of ``cls`` built the way the driver builds its errors."""

    def uses_tls(self, raw: Any) -> bool | None:
        """Whether ``raw`` is encrypted (None: the adapter cannot tell)."""

    def knows_autocommit(self, raw: Any) -> bool:
        """Whether :meth:`status`'s autocommit flag is the driver's, not a guess."""

    def adopt(self, raw: Any) -> None:
        """Prepare a new driver connection before anything is sent on it."""

    def carry_over(self, raw: Any) -> dict[str, Any]:
        """Connect arguments that give the connection replacing ``raw`` what ``raw`` held
        on the client side (psycopg's registered types: ``context=raw``)."""

    def forget_setup(self, raw: Any) -> None:
        """After the proxy's own statements on a new connection (session tracking, the
        questions it asks, the journal): what the caller reads of the last statement
        (``insert_id()``, ``affected_rows()``) is made as it is after connect."""

    def tracking_sql(self, raw: Any) -> str | None:
        """The statement that makes the server report, in its replies on ``raw``, writes
        to tables it cannot roll back (run once per connection); None if it cannot."""

    def watch_writes(self, raw: Any) -> None:
        """After ``tracking_sql`` ran: watch every reply on ``raw`` (not only the last of
        a statement) for writes the server names as kept, for ``kept_writes``."""

    def kept_writes(self, raw: Any) -> bool | None:
        """Whether the replies on ``raw`` since the last call reported a write, in the
        open transaction, to a table the server cannot roll back (MyISAM, Aria); None:
        the last reply could not say (a result set). After ``watch_writes``."""

    def socket_fd(self, raw: Any) -> int | None:
        """The file descriptor of ``raw``'s socket to the server; None if it has none or
        the driver hides it (then the two hooks below can do nothing)."""

    def set_dead_peer_timeout(self, raw: Any, seconds: float) -> None:
        """Make ``raw`` fail with the driver's "lost connection" error once the server
        has been silent for about ``seconds`` (:class:`~resilient_dbapi.DeadPeerTimeout`),
        without capping a query the server is still running; called on each new
        connection before anything is sent."""

    def shut_down(self, raw: Any) -> None:
        """Shut ``raw``'s socket down both ways without closing it, from any thread: an
        operation blocked on it fails at once with the driver's error. Never raises."""


class Adapter(Inspector, Protocol):
    """What the sync proxy needs from a driver."""

    def drain(self, raw: Any) -> None:
        """Read and discard the result sets :meth:`pending` reports, as the driver does
        before its next command; raises the driver's error."""

    def ping(self, raw: Any, timeout: float) -> None:
        """A round trip bounded by ``timeout`` seconds; raises the driver's error if dead."""

    def wait_timeout(self, raw: Any) -> float | None:
        """The session's ``wait_timeout`` in seconds (one round trip), if the server has one."""

    def completion_chains(self, raw: Any) -> bool:
        """Whether COMMIT and ROLLBACK chain or release by default on ``raw``'s server
        (MySQL's ``completion_type`` not ``NO_CHAIN``; one round trip)."""

    def table_rolls_back(self, raw: Any, database: str, name: str) -> bool:
        """Whether everything a write to the table ``database``.``name`` ("": the current
        database) does is rolled back with its transaction (InnoDB, no trigger, not a
        view); False when the server cannot say. One round trip."""

    def last_insert_id(self, raw: Any) -> int | None:
        """The last id an insert on ``raw``'s session generated (MySQL's
        ``LAST_INSERT_ID()``: 0 until one did); None where the server has no such
        history. One round trip."""

    def execute(self, raw: Any, query: str, args: Any) -> None:
        """Run one statement on ``raw`` and discard its result (setting up a session)."""

    def set_autocommit(self, raw: Any, value: bool) -> None: ...

    def select_db(self, raw: Any, db: str) -> None: ...

    def role(self, raw: Any) -> Role:
        """What the server serves now (writable, read-only, not ready); one round trip or
        two, asked only when :attr:`reads_role` is True."""


class AsyncAdapter(Inspector, Protocol):
    """What the asyncio proxy needs from a driver: the round trips are coroutines."""

    async def drain(self, raw: Any) -> None:
        """Read and discard the result sets :meth:`pending` reports, as the driver does
        before its next command; raises the driver's error."""

    async def ping(self, raw: Any, timeout: float) -> None:
        """A round trip bounded by ``timeout`` seconds; raises the driver's error if dead."""

    async def wait_timeout(self, raw: Any) -> float | None:
        """The session's ``wait_timeout`` in seconds (one round trip), if the server has one."""

    async def completion_chains(self, raw: Any) -> bool:
        """Whether COMMIT and ROLLBACK chain or release by default on ``raw``'s server
        (MySQL's ``completion_type`` not ``NO_CHAIN``; one round trip)."""

    async def table_rolls_back(self, raw: Any, database: str, name: str) -> bool:
        """Whether everything a write to the table ``database``.``name`` ("": the current
        database) does is rolled back with its transaction (InnoDB, no trigger, not a
        view); False when the server cannot say. One round trip."""

    async def last_insert_id(self, raw: Any) -> int | None:
        """The last id an insert on ``raw``'s session generated (MySQL's
        ``LAST_INSERT_ID()``: 0 until one did); None where the server has no such
        history. One round trip."""

    async def execute(self, raw: Any, query: str, args: Any) -> None:
        """Run one statement on ``raw`` and discard its result (setting up a session)."""

    async def set_autocommit(self, raw: Any, value: bool) -> None: ...

    async def select_db(self, raw: Any, db: str) -> None: ...

    async def role(self, raw: Any) -> Role:
        """What the server serves now (writable, read-only, not ready); one round trip or
        two, asked only when :attr:`reads_role` is True."""


class DriverSurface:
    """A mixin for the resilient connection class of one driver, for what that driver
    spells differently from PyMySQL (``autocommit`` as a property, ``conn.execute()``).

    Adapters name theirs in :attr:`AdapterBase.surface`; it comes before the proxy class
    in the MRO, so its members replace the proxy's."""

    # What the proxy class it is mixed into holds.
    _adapter: Inspector
    _raw: Any


class AutocommitProperty(DriverSurface):
    """For drivers whose ``conn.autocommit`` is a property (mysql-connector, psycopg):
    reading it asks the adapter (no round trip), and setting it goes through the proxy's
    ``autocommit()``, so the setting is kept for every new connection."""

    __slots__ = ()

    @property
    def autocommit(self) -> bool:
        return bool(self._adapter.status(self._raw)[1])

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        super().autocommit(value)  # type: ignore[misc]

    def set_autocommit(self, value: bool) -> None:
        """psycopg's spelling of the setter."""
        super().autocommit(value)  # type: ignore[misc]


class CommitOnExit(DriverSurface):
    """``with conn:`` as sqlite3 means it: commit on success, roll back on an error; the
    connection stays open."""

    __slots__ = ()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.commit()  # type: ignore[attr-defined]
        else:
            with contextlib.suppress(Exception):  # the error in flight is the one to see
                self.rollback()  # type: ignore[attr-defined]


class CommitThenCloseOnExit(CommitOnExit):
    """``with conn:`` as psycopg means it: commit (or roll back), then close."""

    __slots__ = ()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if not self.open:  # type: ignore[attr-defined]
                return
            super().__exit__(exc_type, *rest)
        finally:
            self.close()  # type: ignore[attr-defined]


class AdapterBase:
    """Defaults for an adapter: subclasses set the error classes and override what their
    driver can do better."""

    name = "driver"
    operational_error: type[Exception]
    interface_error: type[Exception]
    programming_error: type[Exception]
    closed_cursor_error: type[Exception] | None = None
    ping_reopens: bool | None = None
    gone_code: Code = 0
    reconnects_itself = False
    postgres = False
    transactional_only = False
    says_transaction = False
    idle_setting = "wait_timeout"
    """The session setting after which the server closes an idle connection: a ``SET``
    of it makes the proxy read the new value (see :meth:`wait_timeout`)."""
    in_process = False
    """True for an in-process database (sqlite3): never replaced by a policy, which
    would swap the database for another one."""
    connect_timeout_argument: str | None = "connect_timeout"
    """The driver's ``connect()`` argument bounding a connect in seconds (None: none),
    which a background probe sets (see HostProbe)."""

    def probe_arguments(self, timeout: float) -> dict[str, Any] | None:
        """The ``connect()`` arguments that bound a background probe by ``timeout``
        seconds, greeting included (None: the driver has none). Whole seconds: mysqlclient
        takes no fraction, libpq counts in seconds."""
        if self.connect_timeout_argument is None:
            return None
        return {self.connect_timeout_argument: max(1, math.ceil(timeout))}

    sets_through_cursor = False
    """True when result sets a statement on an unbuffered cursor left unread can only be
    read through that cursor (mysqlclient: the connection cannot tell its rows are
    unread, and answers "commands out of sync" for the next set)."""
    opens_transactions = False
    """True when the driver has its own API that opens transactions past the proxy
    (psycopg's ``transaction()``): its transaction flag is then read before sending."""
    warned_after: tuple[type[Exception], ...] = ()
    """The driver's exceptions raised only after a statement ran, for the server's
    warnings (aiomysql warns of them, and a warnings filter may make that an error): the
    default :meth:`warned` is true for them. Never one the driver may raise before
    sending (PyMySQL's DeprecationWarning for a lone parameter)."""

    def warned(self, exc: BaseException) -> bool:
        return isinstance(exc, self.warned_after)

    def mid_reply(self, exc: BaseException) -> bool:
        return False  # a driver that decodes after reading the whole reply stays in step

    replays = False
    replay_cursor: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})

    @property
    def reads_role(self) -> bool:
        """Whether :meth:`role` can tell a primary from a replica (``target=`` needs it):
        True when a subclass implements it."""
        return type(self).role is not AdapterBase.role

    surface: tuple[type, ...] = ()
    """Mixins for the connection class (see :class:`DriverSurface`)."""
    cursor_surface: tuple[type, ...] = ()
    """Mixins for the cursor class."""

    def make_error(self, cls: type[Exception], code: Code, message: str) -> Exception:
        """An instance of ``cls`` (a driver error class, or a subclass of one) built the
        way the driver builds its errors, carrying ``code``."""
        return cls(code, message)

    def uses_tls(self, raw: Any) -> bool | None:
        return None  # cannot tell: the TLS bar is not checked

    def knows_autocommit(self, raw: Any) -> bool:
        return True

    def adopt(self, raw: Any) -> None:
        return None

    def forget_setup(self, raw: Any) -> None:
        return None  # what the driver shows of the last statement cannot be reset

    def carry_over(self, raw: Any) -> dict[str, Any]:
        return {}  # the driver keeps nothing on its connection object worth carrying

    def tracking_sql(self, raw: Any) -> str | None:
        return None  # the driver shows no session tracking: no rollback is provable

    def watch_writes(self, raw: Any) -> None:
        return None  # nothing to watch without tracking_sql

    def kept_writes(self, raw: Any) -> bool | None:
        return None  # no tracking: the engine counts every write as perhaps kept

    def socket_fd(self, raw: Any) -> int | None:
        return None  # no socket to reach: no dead-peer bound, no abort from another thread

    def driver_socket(self, raw: Any) -> Any:
        """The driver's own socket object of ``raw`` (a :class:`socket.socket`, or what
        stands in for one), or None: socket options are then set through a duplicate of
        :meth:`socket_fd`."""
        return None

    def set_dead_peer_timeout(self, raw: Any, seconds: float) -> None:
        sock = self.driver_socket(raw)
        if sock is not None:
            _sockets.set_dead_peer_timeout(sock, seconds)
            return
        fd = self.socket_fd(raw)
        if fd is not None:
            _sockets.set_dead_peer_timeout(fd, seconds)

    def shut_down(self, raw: Any) -> None:
        # The driver may be closing the connection in the blocked thread at this moment:
        # whatever it left behind, there is nothing more to do.
        with contextlib.suppress(Exception):
            fd = self.socket_fd(raw)
            if fd is not None:
                _sockets.shut_down(fd)

    def role(self, raw: Any) -> Any:
        raise NotImplementedError(f"{self.name}: the server's role cannot be read")

    def known_dead(self, raw: Any) -> Callable[[], bool] | None:
        return None  # nothing the driver knows without a system call

    def ended_unseen(self, raw: Any) -> bool:
        return False

    def in_driver_block(self, raw: Any) -> bool:
        return False

    def busy(self, raw: Any) -> bool:
        return False

    def pending(self, raw: Any) -> bool:
        return False

    def drain(self, raw: Any) -> Any:
        """Nothing to read where :meth:`pending` is never True (``Any``: an asyncio
        adapter's override is a coroutine)."""

    def unbuffered(self, cursor: Any) -> bool:
        return False

    def result_digest(self, cursor: Any) -> object:
        return None

    def result_kept(self, cursor: Any) -> object:
        return self.result_digest(cursor)

    def kept_digest(self, kept: Any) -> object:
        return kept

    def discard(self, raw: Any) -> None:
        with contextlib.suppress(Exception):  # a broken connection may fail to close
            raw.close()

    def describe(self, raw: Any) -> str:
        return self.name
