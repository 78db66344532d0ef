"""What the MySQL-protocol adapters share: PyMySQL's error classes and the server's
status flags (PyMySQL, aiomysql), the socket check of an idle connection (all four), and
session setup through a buffered cursor (the sync ones)."""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

import pymysql
import pymysql.err
from pymysql.constants import CLIENT

from ..error_kinds import MYSQL_ERRORS
from ..hosts import Role
from ._frames import raised_in
from .base import KEPT_ROWS, AdapterBase, Liveness, rows_digest

__all__ = [
    "COMPLETION_TYPE",
    "CR_SERVER_GONE_ERROR",
    "TABLE_QUESTION",
    "MySQLProtocol",
    "MySQLSession",
    "chains",
    "dead",
    "record_kept",
    "rolls_back_whole",
    "socket_probe",
    "table_args",
]

_IN_TRANS = 0x0001  # SERVER_STATUS_IN_TRANS
_AUTOCOMMIT = 0x0002  # SERVER_STATUS_AUTOCOMMIT
CR_SERVER_GONE_ERROR = 2006  # PyMySQL raises it only when sending failed
_CR_SERVER_LOST = 2013
_STATE_CHANGED = 0x4000  # SERVER_SESSION_STATE_CHANGED
_TRANSACTION_STATE = 5  # SESSION_TRACK_TRANSACTION_STATE
_KEPT = "_resilient_dbapi_kept"  # set on the driver's connection by record_kept()
_POLL_ANY = (
    select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
    if hasattr(select, "poll")
    else 0
)


def dead() -> Liveness:
    return Liveness.DEAD


def socket_probe(sock: Any, tls: bool, current: Callable[[], bool]) -> Callable[[], Liveness]:
    """A zero-timeout check of an idle connection's socket (a socket object or a file
    descriptor), after ``current()`` says the driver still uses it.

    An idle MySQL connection has nothing to read: any event means the server closed it,
    reset it, or sent a goodbye packet (MySQL 8's error 4031). Under TLS the server may
    also have sent session tickets nobody read yet, so a readable TLS socket is only a
    reason to ask the server.
    """
    fd = sock if isinstance(sock, int) else sock.fileno()
    if fd < 0:  # closed before anyone looked
        return dead
    if _POLL_ANY:
        poller = select.poll()
        poller.register(fd, _POLL_ANY)

        def probe() -> Liveness:
            if not current():
                return Liveness.DEAD
            events = poller.poll(0)
            if not events:
                return Liveness.ALIVE
            if tls and events[0][1] & ~(select.POLLIN | select.POLLPRI) == 0:
                return Liveness.UNSURE
            return Liveness.DEAD

        return probe

    def probe_select() -> Liveness:  # platforms without poll()
        if not current():
            return Liveness.DEAD
        readable, _, errored = select.select([fd], [], [fd], 0)
        if not readable and not errored:
            return Liveness.ALIVE
        return Liveness.UNSURE if tls and not errored else Liveness.DEAD

    return probe_select


class MySQLProtocol(AdapterBase):
    """What PyMySQL and aiomysql share: PyMySQL's error classes and the server's
    status flags."""

    name = "mysql"
    errors = MYSQL_ERRORS
    operational_error: type[Exception] = pymysql.err.OperationalError
    interface_error: type[Exception] = pymysql.err.InterfaceError
    programming_error: type[Exception] = pymysql.err.ProgrammingError
    gone_code = CR_SERVER_GONE_ERROR
    says_transaction = True  # server_status: SERVER_STATUS_IN_TRANS from every reply

    def owns_error(self, exc: BaseException) -> bool:
        return isinstance(exc, pymysql.err.MySQLError)

    rows_module: str
    """The driver's module whose ``_read_row_from_packet`` decodes each row as it is read."""

    def mid_reply(self, exc: BaseException) -> bool:
        names = set(raised_in(exc, self.rows_module))
        # An unbuffered cursor's result stays active: the driver reads the rest
        # (undecoded) before its next command, and the connection stays in step.
        return "_read_row_from_packet" in names and "_read_rowdata_packet_unbuffered" not in names

    def status(self, raw: Any) -> tuple[bool, bool]:
        flags = raw.server_status  # read before every statement: no bool() calls
        return flags & _IN_TRANS != 0, flags & _AUTOCOMMIT != 0

    def forget_setup(self, raw: Any) -> None:
        # insert_id() reads the last result, affected_rows() a field of its own.
        raw._result = None
        raw._affected_rows = 0

    def busy(self, raw: Any) -> bool:
        result = raw._result
        return result is not None and bool(result.unbuffered_active)

    def pending(self, raw: Any) -> bool:
        result = raw._result
        return result is not None and bool(result.has_next)

    def error_code(self, exc: BaseException) -> int | None:
        if not isinstance(exc, pymysql.err.MySQLError):
            return _lost_while_failing(exc)
        code = exc.args[0] if exc.args else None
        return code if isinstance(code, int) else None

    def tracking_sql(self, raw: Any) -> str | None:
        # The capability is agreed at the handshake: connect_kwargs() asks for it.
        if raw.client_flag & raw.server_capabilities & CLIENT.SESSION_TRACK:
            return "SET SESSION session_track_transaction_info = STATE"
        return None

    def kept_writes(self, raw: Any) -> bool | None:
        if raw.__dict__.pop(_KEPT, False):
            return True
        result = raw._result
        if result is None or result.message is None:
            # A result set's end carries no session state, and the server does not
            # report it later: an INSERT ... RETURNING into MyISAM is never named.
            return None
        return False

    def describe(self, raw: Any) -> str:
        host = getattr(raw, "host", "?")
        port = getattr(raw, "port", "?")
        unix = getattr(raw, "unix_socket", None)
        return f"{self.name} {unix}" if unix else f"{self.name} {host}:{port}"


COMPLETION_TYPE = "SELECT @@SESSION.completion_type"
INSERT_ID_QUESTION = "SELECT LAST_INSERT_ID()"


def chains(completion_type: Any) -> bool:
    """Whether a ``completion_type`` (a name, or its number on some servers) chains or
    releases: anything but ``NO_CHAIN`` (0)."""
    return _text(completion_type).upper() not in ("NO_CHAIN", "0")


# The current user as information_schema's GRANTEE names it: 'name'@'host'.
_GRANTEE = (
    "CONCAT('''', LEFT(CURRENT_USER(), CHAR_LENGTH(CURRENT_USER())"
    " - CHAR_LENGTH(SUBSTRING_INDEX(CURRENT_USER(), '@', -1)) - 1), '''@''',"
    " SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')"
)
_SCHEMA = "IF(%s = '', DATABASE(), %s)"
_HOLDS_TRIGGER = f"p.GRANTEE = {_GRANTEE} AND p.PRIVILEGE_TYPE = 'TRIGGER'"
# One row for a table of that name: its engine, its type, how many triggers it has, and
# whether the user holds the TRIGGER privilege on it (globally, on its database or on
# the table: without it, MySQL shows none of its triggers, so none is no proof).
# Every predicate is a constant, so the server opens only that table's entries (a
# correlated subquery scans every trigger of the schema: 1.3 ms instead of 0.5 ms on a
# schema of 40 tables with triggers).
TABLE_QUESTION = (
    "SELECT t.ENGINE, t.TABLE_TYPE, (SELECT COUNT(*) FROM information_schema.TRIGGERS g"
    f" WHERE g.EVENT_OBJECT_SCHEMA = {_SCHEMA} AND g.EVENT_OBJECT_TABLE = %s),"
    " (SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES p"
    f" WHERE {_HOLDS_TRIGGER})"
    " + (SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES p"
    f" WHERE {_HOLDS_TRIGGER} AND p.TABLE_SCHEMA = {_SCHEMA})"
    " + (SELECT COUNT(*) FROM information_schema.TABLE_PRIVILEGES p"
    f" WHERE {_HOLDS_TRIGGER} AND p.TABLE_SCHEMA = {_SCHEMA} AND p.TABLE_NAME = %s)"
    " FROM information_schema.TABLES t"
    f" WHERE t.TABLE_SCHEMA = {_SCHEMA} AND t.TABLE_NAME = %s"
)


def table_args(database: str, name: str) -> tuple[str, ...]:
    """The parameters of :data:`TABLE_QUESTION` for ``database`` ("" for the current
    one) and ``name``, in the order of its placeholders."""
    schema = (database, database)
    return (*schema, name, *schema, *schema, name, *schema, name)


# The role question: ``read_only``, and whether the server is a Galera node (whose
# readiness is asked next) and is being drained (``wsrep_reject_queries``: it answers 1047
# while Synced). ``SHOW ... WHERE`` rather than ``@@wsrep_on``: a MySQL server has no such
# variable, and a plain MariaDB reports ``wsrep_ready=OFF``.
ROLE_QUESTION = (
    "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'wsrep_on', 'wsrep_reject_queries')"
)
READY_QUESTION = "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state')"
# A server error answering a SHOW: 1047 (refused: not ready), 1205 (``wsrep_sync_wait``
# with bit 8 makes a SHOW wait for the cluster, which fails on a node that is not ready).
UNREADY_ANSWERS = frozenset({1047, 1205})


def answer_code(exc: BaseException) -> object:
    """The server's error number in any MySQL driver's error (mysql-connector: ``errno``;
    PyMySQL, mysqlclient: the first argument)."""
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int):
        return errno
    return exc.args[0] if exc.args else None


def settings(rows: Any) -> dict[str, str]:
    """``SHOW VARIABLES``/``STATUS`` rows as a dict: names lower-case, values upper-case."""
    return {_text(name).lower(): _text(value).upper() for name, value in rows}


def clustered(variables: dict[str, str]) -> bool:
    """Whether the server (its :data:`ROLE_QUESTION` answer) is a Galera node."""
    return variables.get("wsrep_on") == "ON"


def role_of(variables: dict[str, str], status: dict[str, str] | None) -> Role:
    """The role from :data:`ROLE_QUESTION`'s answer and, on a Galera node,
    :data:`READY_QUESTION`'s: a node serves only when ready, Synced (4) and not drained;
    one that is joining, donating or desynced lags or blocks writes. ValueError when the
    answer lacks ``read_only`` (something between us and the server answered)."""
    if "read_only" not in variables:
        raise ValueError(
            "the server's role is unknown: SHOW GLOBAL VARIABLES named no read_only "
            f"(answered: {sorted(variables)}); target= needs it, target='any' does not ask"
        )
    if status is not None and (
        status.get("wsrep_ready") != "ON" or status.get("wsrep_local_state") != "4"
    ):
        return Role.NOT_READY
    if variables.get("wsrep_reject_queries", "NONE") != "NONE":
        return Role.NOT_READY
    read_only = variables["read_only"] not in ("OFF", "0")
    return Role.READ_ONLY if read_only else Role.WRITABLE


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def rolls_back_whole(row: Any) -> bool:
    """The answer to :data:`TABLE_QUESTION`: an InnoDB base table without triggers (a
    trigger may write a table that keeps its rows), as seen by a user shown them all."""
    if not row:
        return False
    engine, kind, triggers, sees_triggers = row
    return (
        _text(engine).lower() == "innodb"
        and _text(kind).upper() == "BASE TABLE"
        and int(triggers) == 0
        and int(sees_triggers) > 0
    )


def record_kept(raw: Any) -> None:
    """After the driver read one reply (each of a procedure's, each query of an
    ``executemany``): note on ``raw`` whether the server named a write to a table it
    cannot roll back, for :meth:`MySQLProtocol.kept_writes` to take. The server reports a
    transaction's state only in the reply of the statement that changed it."""
    if raw.server_status & _STATE_CHANGED:
        result = raw._result
        message = result.message if result is not None else None
        if isinstance(message, bytes) and _nontransactional_write(message):
            raw.__dict__[_KEPT] = True


class MySQLSession:
    """Session setup on a MySQL-protocol driver, through a buffered cursor of
    :meth:`_cursor`."""

    def _cursor(self, raw: Any) -> Any:
        raise NotImplementedError

    def _row(self, raw: Any, query: str, args: Any = None) -> Any:
        cursor = self._cursor(raw)
        try:
            cursor.execute(query, args)
            return cursor.fetchone()
        finally:
            cursor.close()

    def table_rolls_back(self, raw: Any, database: str, name: str) -> bool:
        return rolls_back_whole(self._row(raw, TABLE_QUESTION, table_args(database, name)))

    def last_insert_id(self, raw: Any) -> int | None:
        return int(self._row(raw, INSERT_ID_QUESTION)[0])

    def wait_timeout(self, raw: Any) -> float | None:
        row = self._row(raw, "SELECT @@SESSION.wait_timeout")
        return float(row[0]) if row and row[0] else None

    def completion_chains(self, raw: Any) -> bool:
        return chains(self._row(raw, COMPLETION_TYPE)[0])

    def _rows(self, raw: Any, query: str) -> Any:
        cursor = self._cursor(raw)
        try:
            cursor.execute(query)
            return cursor.fetchall()
        finally:
            cursor.close()

    def role(self, raw: Any) -> Role:
        """Writable, read-only (``read_only``: a replica), or not ready (a Galera node
        outside the primary component, not Synced, or drained)."""
        try:
            variables = settings(self._rows(raw, ROLE_QUESTION))
            status = settings(self._rows(raw, READY_QUESTION)) if clustered(variables) else None
        except Exception as exc:
            if answer_code(exc) in UNREADY_ANSWERS:
                return Role.NOT_READY
            raise
        return role_of(variables, status)

    def execute(self, raw: Any, query: str, args: Any) -> None:
        cursor = self._cursor(raw)
        try:
            cursor.execute(query, args)
        finally:
            cursor.close()


def _lost_while_failing(exc: BaseException) -> int | None:
    """PyMySQL's cleanup after a failed send may itself fail on the socket it just closed:
    a ``LOAD DATA LOCAL INFILE`` upload cut mid-file ends in an AttributeError with the
    2006 as its context. The statement had reached the server (only its file did not), so
    it is a connection lost during the query (2013), never "not sent"."""
    context = exc.__context__
    if (
        isinstance(exc, AttributeError)
        and isinstance(context, pymysql.err.OperationalError)
        and context.args[:1] in ((CR_SERVER_GONE_ERROR,), (_CR_SERVER_LOST,))
    ):
        return _CR_SERVER_LOST
    return None


def connect_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """PyMySQL's and aiomysql's connect arguments, asking the server for session
    tracking (the capability is agreed at the handshake, or never)."""
    return {**kwargs, "client_flag": kwargs.get("client_flag", 0) | CLIENT.SESSION_TRACK}


def take_autocommit(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[dict[str, Any], bool | None]:
    """PyMySQL's and aiomysql's connect arguments without the autocommit mode, and the
    mode (None: left to the driver). The driver would set it with a round trip of its
    own; the set-up statement that turns session tracking on sets it in the same one."""
    mode = kwargs.get("autocommit", False)  # both drivers' default: off
    if args or mode is None:  # None: the server's default, which the driver keeps
        return kwargs, None
    return {**kwargs, "autocommit": None}, bool(mode)


def _lenenc(data: bytes, pos: int) -> tuple[int, int]:
    """A length-encoded integer at ``pos``: its value and the position after it."""
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first, 0)
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def _nontransactional_write(message: bytes) -> bool:
    """Whether an OK packet's tail (PyMySQL's ``message``: the info string, then the
    session state changes) reports a transaction state (``session_track_transaction_info
    = STATE``) with a write to a non-transactional table: ``w``, its fourth letter."""
    try:
        size, pos = _lenenc(message, 0)
        pos += size  # the info string
        total, pos = _lenenc(message, pos)
        end = min(pos + total, len(message))
        while pos < end:
            kind = message[pos]
            size, pos = _lenenc(message, pos + 1)
            if kind == _TRANSACTION_STATE:
                length, start = _lenenc(message, pos)
                if length < 4 or start + 4 > len(message):
                    return True  # a state cut short: the weaker claim
                return message[start + 3 : start + 4] == b"w"
            pos += size
    except IndexError:
        return True  # a reply it cannot read: the weaker claim
    return False


def result_kept(cursor: Any) -> object:
    """What a replay log keeps of a PyMySQL or aiomysql cursor's result after ``execute``:
    the driver's result object (never changed once read), by reference, for
    :func:`kept_digest` at a replay; a result of more than KEPT_ROWS rows digested at
    once instead, never kept whole."""
    result = cursor._result
    rows = result.rows
    if rows is not None and len(rows) > KEPT_ROWS:
        # Of the result's rows, as kept_digest reads them: a dict cursor's would merge
        # columns of the same name, and a replay would diverge where nothing differs.
        return (
            result.affected_rows,
            result.insert_id,
            result.description,
            result.warning_count,
            rows_digest(rows),
        )
    return result


def kept_digest(kept: Any) -> object:
    """:func:`result_digest` of what :func:`result_kept` kept: the cursor's fields are
    its result's (``rowcount`` its ``affected_rows``, ``lastrowid`` its ``insert_id``,
    the rows as read; a replay reads through a plain cursor)."""
    if kept.__class__ is tuple:
        return kept  # digested when kept
    return (kept.affected_rows, kept.insert_id, kept.description, kept.warning_count, kept.rows)


def result_digest(cursor: Any) -> object:
    """What a PyMySQL or aiomysql cursor shows of its buffered result, to compare with
    ``==``: the row count, the last insert id, the description, the warning count and
    the rows (as tuples whatever the cursor class: a replay reads them through a plain
    cursor); a large result's rows as a digest."""
    rows = cursor._rows
    warnings = getattr(cursor, "warning_count", None)
    if warnings is None:
        result = getattr(cursor, "_result", None)
        warnings = getattr(result, "warning_count", 0) if result is not None else 0
    if rows:
        if isinstance(rows[0], dict):
            rows = tuple(tuple(row.values()) for row in rows)
        elif not isinstance(rows, tuple):
            rows = tuple(rows)
        if len(rows) > KEPT_ROWS:
            rows = rows_digest(rows)
    return (cursor.rowcount, cursor.lastrowid, cursor.description, warnings, rows)
