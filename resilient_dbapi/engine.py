"""The sans-IO engine: what a resilient connection should do next.

The engine keeps the state of one logical connection (when the physical connection was
opened and last used, whether a transaction with writes is open, whether it must be
replaced) and turns facts into decisions. It never sleeps, reads the clock or touches a
socket: the proxies (sync and asyncio) report facts through its methods, passing ``now``
in, and carry the decisions out, so both run the same rules. Its state changes only
through those methods (a test reads the sources to hold every other module to that).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from .error_kinds import Code, ErrorKind, ErrorTable
from .hosts import Failover, Role, Target
from .policies import (
    DeadPeerTimeout,
    MaxAge,
    PingOnCheckout,
    Policy,
    ReplayTransaction,
    RetryOnError,
)
from .statements import (
    AUTOCOMMIT_OP,
    ONE_SHOT,
    ONE_SHOT_STATE,
    RELEASED_BY,
    TAKEN_BY_A_WRITE,
    WITH_ONE_SHOT,
    Statement,
    StatementKind,
    key_names,
)
from .statements import statement as record_of

__all__ = ["Checkout", "Engine", "Op", "Reason", "TLSFloor", "Verdict"]

_INF = float("inf")
_CONNECT_MAY_PASS = frozenset({ErrorKind.CONNECT_TRANSIENT, ErrorKind.DEAD, ErrorKind.NOT_READY})
_ASKS_READY = frozenset({ErrorKind.NOT_READY, ErrorKind.STATEMENT_ABORTED})
_REFUSAL_ROLES = {ErrorKind.READ_ONLY: Role.READ_ONLY, ErrorKind.NOT_READY: Role.NOT_READY}
_READ = StatementKind.READ
# How many statement texts one connection remembers as seen to write only tables that
# roll back: enough for an application's statements, bounded for one that makes texts.
_ROLLS_BACK_MAX = 512
# The setting that makes a MySQL server name writes it cannot roll back (see tracking()).
_TRACKING = "session_track_transaction_info"
_USE = "use"  # the journal's key for the current database (USE, select_db())
_IDENTITY_NAMES = frozenset({"identity", "last_insert_id"})  # SET them: LAST_INSERT_ID()


def _sets_identity(key: str | None) -> bool:
    """Whether a setting's journal key names what sets LAST_INSERT_ID()."""
    return not _IDENTITY_NAMES.isdisjoint(key_names(key))


_TEMPORARY = "temporary tables"  # the session state a CREATE TEMPORARY TABLE makes


def _tracking_key(key: str | None) -> bool:
    return key is not None and _TRACKING in key


class Reason(enum.Enum):
    """Why a connection was replaced."""

    LIVENESS = "liveness"
    """The socket check found it closed, reset or spoken to."""
    PING = "ping"
    """A ping failed."""
    MAX_AGE = "max_age"
    IDLE = "idle"
    """Idle for nearly the server's ``wait_timeout``."""
    ERROR = "error"
    """A statement failed with a dead-connection error."""
    READ_ONLY = "read_only"
    """The server turned read-only (a failover demoted it): another host is wanted."""
    NOT_READY = "not_ready"
    """The server stopped serving (a Galera node left the primary component, or is not
    Synced): another host is wanted."""
    COMMIT_FAILED = "commit_failed"
    """The server failed while committing (1180): what it was committing may or may not
    have been applied, and the session is not trusted further."""
    REOPENED = "reopened"
    """The caller reopened a closed connection (the driver's ``ping(reconnect=True)``)."""
    HOST_MARKED = "host_marked"
    """Another connection of the same ``connect()``/``creator()`` found this one's host
    unreachable or in the wrong role (several hosts): replaced before anything is sent."""


class Op(enum.Enum):
    """The operation that failed."""

    EXECUTE = "execute"
    EXECUTEMANY = "executemany"
    CALLPROC = "callproc"
    FETCH = "fetch"
    COMMIT = "commit"
    ROLLBACK = "rollback"


class Verdict(enum.Enum):
    """What to do about a failed operation."""

    RESEND = "resend"
    """Reconnect and send it again: it is provably safe."""
    RECOVERED = "recovered"
    """Nothing was lost (a rollback, a commit of nothing): report success."""
    TRANSACTION_LOST = "transaction_lost"
    OUTCOME_UNKNOWN = "outcome_unknown"
    SESSION_LOST = "session_lost"
    """It would be safe to send again, but the session had state a new connection
    cannot rebuild: raise ``SessionLostError`` once instead."""
    RAISE = "raise"
    """Raise the driver's own error unchanged."""
    REPLAY = "replay"
    """The transaction was provably rolled back with its connection, and every statement
    of it can be run again and checked (:class:`ReplayTransaction`): reconnect, replay
    :attr:`Engine.replaying`, then send the operation."""


class LogEntry(NamedTuple):
    """One statement of an open transaction, kept for a replay: how it was sent
    (``execute``, ``executemany``, or the driver's ``begin``), its text and parameters,
    and what the caller could see of its result, compared by ``==`` with the replay's
    ``result_digest`` (for ``execute`` the adapter's ``result_kept``, its
    ``kept_digest`` taken at the replay; for ``executemany``, whose row count sums its
    statements', the ``result_digest`` itself; None: nothing to compare, as for
    ``begin``)."""

    statement: Statement
    method: str
    query: Any
    args: Any
    digest: object


# How many times one transaction is replayed at most: each replay needs a new loss, but a
# server that drops every connection must not keep a caller replaying forever.
_MAX_REPLAYS = 3


class ServerFacts:
    """What the connections of one ``connect()``, ``creator()`` or pool learned of their
    server, shared like the TLS floor: the statement texts it was seen to run inside a
    transaction writing only tables it rolls back (bounded, see
    :meth:`Engine.wrote_in_transaction`), the tables it said roll back whole, and
    whether its COMMIT chains by default (``completion_type``, asked once; None until
    then)."""

    __slots__ = ("chains", "reached", "rolls_back", "tables")

    def __init__(self) -> None:
        self.rolls_back: set[Statement] = set()
        # A connection was made once: the server's name was known then, so a resolver
        # that does not know it now is passing (a container restarting), not a typo.
        self.reached = False
        self.chains: bool | None = None
        # Tables asked about (see Engine.asks_table): whether all a write to one does
        # rolls back (InnoDB, no trigger, not a view). Bounded like rolls_back.
        self.tables: dict[tuple[str, str], bool] = {}


@dataclass(frozen=True, slots=True)
class Checkout:
    """What to do before sending at a checkout: reconnect, or ping (with a time limit)."""

    reconnect: Reason | None = None
    ping_timeout: float | None = None


_PROCEED = Checkout()
_XA_OPENS = frozenset({"start", "begin", "end", "prepare"})
_XA_ENDS = frozenset({"commit", "rollback"})
# The statements whose reply is an OK packet, which carries the server's status flags.
_STATUS_FRESH = frozenset(
    {StatementKind.SESSION, StatementKind.BEGIN, StatementKind.COMMIT, StatementKind.ROLLBACK}
)


class TLSFloor:
    """Whether every new physical connection must use TLS: shared by the logical
    connections of one ``connect()``, ``creator()`` or drop-in pool, and raised for good
    once any of them used TLS. Only :meth:`Engine.tls_allows` reads or raises it."""

    __slots__ = ("_required",)

    def __init__(self) -> None:
        self._required = False

    @property
    def required(self) -> bool:
        return self._required

    def met_tls(self) -> None:
        """A connection used TLS. A store of True that is never undone needs no lock
        for a pool's threads: a plain connection checked just before it was made before
        any TLS was seen, which a lock would allow as well."""
        self._required = True


class Engine:
    """Decisions and state for one logical connection."""

    __slots__ = (
        "_expires_at",
        "_idle_limit",
        "_idle_trigger",
        "_lifetime",
        "all_roll_back",
        "chains_untold",
        "connected_at",
        "dead_peer",
        "draw",
        "errors",
        "explicit",
        "facts",
        "failover",
        "hidden_use",
        "history_lost",
        "idle_setting",
        "insert_id_lost",
        "insert_id_set_up",
        "journal",
        "kept",
        "last_used",
        "lost",
        "lost_code",
        "lost_uncertain",
        "max_age",
        "moved",
        "next_check_at",
        "next_write",
        "one_shot_applied",
        "ping",
        "pinned",
        "replay",
        "replay_code",
        "replaying",
        "retry",
        "rolls_back",
        "says_transaction",
        "stale",
        "stale_code",
        "stale_reason",
        "sticky",
        "tls_floor",
        "tracks",
        "txn_bytes",
        "txn_log",
        "txn_log_ok",
        "txn_replays",
        "txn_started",
        "txn_writes",
        "unrestorable",
        "wait_timeout",
        "wait_timeout_known",
        "wrote_since_replaced",
        "xa_open",
    )

    def __init__(
        self,
        policies: Iterable[Policy],
        errors: ErrorTable,
        draw: Callable[[], float] = random.random,
        failover: Failover | None = None,
        tls_floor: TLSFloor | None = None,
        facts: ServerFacts | None = None,
    ) -> None:
        self.failover = failover
        self.ping: PingOnCheckout | None = None
        self.max_age: MaxAge | None = None
        self.retry: RetryOnError | None = None
        self.dead_peer: DeadPeerTimeout | None = None
        self.replay: ReplayTransaction | None = None
        self.errors = errors
        seen: set[type] = set()
        for policy in policies:
            if not isinstance(
                policy,
                PingOnCheckout
                | MaxAge
                | RetryOnError
                | DeadPeerTimeout
                | ReplayTransaction
                | ErrorTable,
            ):
                raise TypeError(
                    f"policies: a {type(policy).__qualname__} is not a policy; allowed: "
                    "PingOnCheckout, MaxAge, RetryOnError, DeadPeerTimeout, "
                    "ReplayTransaction, ErrorTable"
                )
            if type(policy) in seen:
                raise ValueError(f"policies: more than one {type(policy).__name__}")
            seen.add(type(policy))
            if isinstance(policy, PingOnCheckout):
                self.ping = policy
            elif isinstance(policy, MaxAge):
                self.max_age = policy
            elif isinstance(policy, RetryOnError):
                self.retry = policy
            elif isinstance(policy, DeadPeerTimeout):
                self.dead_peer = policy
            elif isinstance(policy, ReplayTransaction):
                self.replay = policy
            else:
                self.errors = policy
        self.draw = draw
        self.connected_at = -_INF  # never connected yet
        self.last_used = 0.0
        self.next_check_at = _INF
        self._lifetime = _INF
        self._expires_at = _INF
        self._idle_limit = _INF
        self._idle_trigger = _INF
        self.txn_writes = False  # a transaction with writes (or locks) is open
        self.explicit = False  # ...opened by BEGIN / START TRANSACTION
        self.sticky = False  # ...because a non-read ran with autocommit off
        self.stale = True  # the physical connection must be replaced before use
        # The session runs on a socket the caller gave (PyMySQL's connect(sock)): no other
        # way to that server is known, so it is never replaced nor anything sent again.
        self.pinned = False
        self.stale_reason = Reason.ERROR
        self.stale_code: Code | None = None  # the driver error that made it stale, if any
        self.lost = False  # a transaction was lost and rollback() was not called yet
        self.lost_code: Code | None = None
        # ...and whether its writes may have committed (a COMMIT lost after it was sent,
        # autocommit only guessed, a prepared XA branch that outlives the session).
        self.lost_uncertain = False
        # An XA transaction is open on the session (XA START to XA COMMIT/ROLLBACK).
        self.xa_open = False
        # The open transaction wrote to a table the server cannot roll back (MyISAM,
        # Aria): lost with its connection, that part stays. Whether the server tells
        # (session tracking) is ``tracks``; without, no write is provably rolled back.
        self.kept = False
        self.tracks = True
        # A text ran that may have changed the current database unseen (a USE among
        # several statements): until the next connection, names are not trusted to
        # mean the tables the server was asked about or seen to write.
        self.moved = False
        # A journaled text holds a USE behind another key (several settings sent with
        # parameters): replayed on every connection, so for good.
        self.hidden_use = False
        # The server would not tell its completion_type: every end may chain, on this
        # logical connection (a later connection may be told).
        self.chains_untold = False
        # The driver shows the server's own "transaction open" flag after each reply
        # (PyMySQL, aiomysql): it, not the statements' text, says whether one is open.
        self.says_transaction = False
        # Every table of the server rolls back (PostgreSQL, SQLite) ...
        self.all_roll_back = False
        # ... or the statement texts the server was seen to run inside a transaction
        # without writing to such a table: only those, lost in flight, are provably
        # rolled back with their transaction. Shared, like ``tls_floor``, by the
        # connections of one connect(), creator() or pool; bounded (see
        # wrote_in_transaction()).
        self.facts = ServerFacts() if facts is None else facts
        self.rolls_back = self.facts.rolls_back
        # The session was replaced and nothing ran on the new one yet: a statement asking
        # about the last one's history (LAST_INSERT_ID() ...) would get the new one's.
        self.history_lost = False
        # ...and, of that history, the last id it generated (LAST_INSERT_ID()), which
        # outlasts the statements after it: until an insert on the new one generates one.
        self.insert_id_lost = False
        # ...and whether a write ran on the new session since (until then, its last id
        # is provably not one the caller's statements generated), and whether the
        # session's set-up may have set one (on_connect writes, a journaled identity).
        self.wrote_since_replaced = False
        self.insert_id_set_up = False
        # Raised once a connection sharing it used TLS: every later one must too.
        self.tls_floor = TLSFloor() if tls_floor is None else tls_floor
        # Session settings to replay on every new physical connection, by what they set.
        self.journal: dict[str, tuple[str, Any]] = {}
        # Session state no replay can rebuild (temporary tables, user variables, ...).
        self.unrestorable: set[str] = set()
        # The journal's keys of values no write has yet had the chance to take (SET
        # insert_id, gtid_seq_no: see TAKEN_BY_A_WRITE), by variable: replayed until one
        # runs.
        self.next_write: dict[str, str] = {}
        self.one_shot_applied = False
        """The server reported a transaction open while :data:`ONE_SHOT` was pending: the
        setting is that transaction's, and goes with it, lost or not."""
        # The session's wait_timeout as last read (None: off or not followed).
        self.wait_timeout: float | None = None
        self.wait_timeout_known = False
        # The driver's setting after which the server drops an idle session.
        self.idle_setting = "wait_timeout"
        # Verified replay (with ReplayTransaction): the open transaction's statements, in
        # order, while it can still be replayed (``txn_log_ok``); their size and when the
        # first ran; how often it was replayed already.
        self.txn_log: list[LogEntry] = []
        self.txn_log_ok = True
        self.txn_bytes = 0
        self.txn_started = 0.0
        self.txn_replays = 0
        # After a REPLAY verdict: the statements the new connection must run first, and
        # the error code of the loss (what a failed replay reports).
        self.replaying: tuple[LogEntry, ...] | None = None
        self.replay_code: Code | None = None

    def driver_known(
        self, errors: ErrorTable, in_process: bool, idle_setting: str, replays: bool = True
    ) -> None:
        """The first connection's driver is known: its error table (unless the policies
        gave one), whether its database lives in this process (nothing to check or
        recycle), its idle-timeout setting, and whether its results can be compared (else
        no transaction is replayed)."""
        if not self.errors.codes:
            self.errors = errors
        if in_process:
            self.ping = self.max_age = self.dead_peer = None
        if not replays or in_process:
            self.replay = None
        self.idle_setting = idle_setting

    def tls_allows(self, used: bool) -> bool:
        """A new connection used TLS (or not): whether it may be used. Once any
        connection sharing this engine's TLS floor (those of one ``connect()``,
        ``creator()`` or pool) used TLS, one without is refused."""
        if used:
            self.tls_floor.met_tls()
            return True
        return not self.tls_floor.required

    # -- connecting -------------------------------------------------------------

    @property
    def wants_wait_timeout(self) -> bool:
        return self.max_age is not None and self.max_age.follow_wait_timeout

    def connected(self, now: float, wait_timeout: float | None = None) -> None:
        """A new physical connection is open."""
        replacing = self.connected_at != -_INF
        self.connected_at = now
        self.facts.reached = True
        self.stale = False
        self.explicit = self.sticky = self.txn_writes = self.xa_open = self.kept = False
        self.moved = False
        self.unrestorable.clear()
        self.one_shot_applied = False
        self._lifetime = self.max_age.lifetime(self.draw()) if self.max_age else _INF
        self._expires_at = now + self._lifetime
        self.wait_timeout_changed(wait_timeout, now)
        if replacing:
            # Until a statement runs on it, the next one takes the slow path, where
            # asks_lost_history() is asked.
            self.history_lost = self.insert_id_lost = True
            self.wrote_since_replaced = False
            self.next_check_at = -_INF

    def wait_timeout_changed(self, wait_timeout: float | None, now: float) -> None:
        """The session's ``wait_timeout`` is now ``wait_timeout`` seconds."""
        self.wait_timeout = wait_timeout
        self.wait_timeout_known = self.wants_wait_timeout
        self.last_used = now
        limit = self.max_age.idle_limit(wait_timeout) if self.max_age else None
        self._idle_limit = _INF if limit is None else limit
        ping_idle = self.ping.idle if self.ping else _INF
        self._idle_trigger = min(self._idle_limit, ping_idle)
        self.next_check_at = min(now + self._idle_trigger, self._expires_at)

    # -- the session ------------------------------------------------------------

    @property
    def reuses_wait_timeout(self) -> bool:
        """Whether a new connection may take the last session's wait_timeout instead of
        asking (a round trip per reconnect): the same settings replayed on the same
        server give the same value, and should the server's default have changed, the
        socket check still finds a connection the server closed first. None is asked
        again: a driver may not have been able to tell (psycopg inside a transaction)."""
        return (
            self.wait_timeout_known
            and self.wait_timeout is not None
            and self.ping is not None
            and self.failover is None  # the next connection may be to another server
        )

    def record(self, key: str | None, entry: tuple[str, Any]) -> None:
        """Remember a session setting for replay; a later one with the same key
        replaces it (and moves to the end, keeping the order they were made in)."""
        if key is not None:
            self.journal.pop(key, None)
            self.journal[key] = entry

    def settings_made(
        self, statement: Statement, query: Any, args: Any, count: int | None = None
    ) -> bool:
        """Session settings took effect (the first ``count`` of several, when a later one
        failed): journal them for replay. True when one of them set the idle timeout the
        policies follow, so the proxy must read its new value."""
        shot = statement.effects & ONE_SHOT_STATE
        if statement.parts and not args:
            entries = statement.parts if count is None else statement.parts[:count]
            for key, text in entries:
                self.record(key, ("execute", (text, args)))
            keys = recorded = [key for key, _ in entries]
        else:
            recorded = []
            if statement.parts and shot:
                # Several settings with parameters, one of them held (for the next
                # transaction only, the next generated id): none journaled (the text
                # holds it), the session held for good.
                shot = shot | {WITH_ONE_SHOT}
            else:
                self.record(statement.key, ("execute", (query, args)))
                recorded = [statement.key]
            keys = [statement.key]
            if statement.parts:
                # One entry for several settings: a USE or tracking among them is not
                # under a key of its own.
                keys = [key for key, _ in statement.parts]
                if _USE in keys:
                    self.hidden_use = True
        named = {name for key in keys for name in key_names(key)}
        for variable, held in RELEASED_BY.items():
            if held in shot or variable in named:
                shot = self._next_value_set(variable, held, shot, recorded)
        if ONE_SHOT in shot:
            # Made outside any transaction (the server refuses it inside one, 1568): no
            # transaction has taken it yet, whatever an earlier one held past its end.
            self.one_shot_applied = False
        if shot:
            self.unrestorable.update(shot)  # never journaled: held until spent
        if any(_tracking_key(key) for key in keys):
            self.tracks = self.all_roll_back  # the caller set what the server reports
        return self.wants_wait_timeout and any(
            key is not None and self.idle_setting in key for key in keys
        )

    def _next_value_set(
        self, variable: str, held: str, shot: frozenset[str], recorded: list[str | None]
    ) -> frozenset[str]:
        """``variable`` (see RELEASED_BY) was set: a new value (or none: 0, DEFAULT,
        'AUTOMATIC') replaces one journaled or in doubt. What is left of ``shot``."""
        journaled = [key for key in recorded if key is not None and variable in key_names(key)]
        old = self.next_write.pop(variable, None)
        if old is not None and old not in journaled and old not in self.next_write.values():
            # (One entry may hold another variable's waiting value: kept, replayed first.)
            self.journal.pop(old, None)
        self.unrestorable.discard(held)
        if held in shot and WITH_ONE_SHOT not in shot and journaled:
            # Alone, of a variable a write takes: journaled, held once a write may take it.
            self.next_write[variable] = journaled[-1]
            return shot - {held}
        return shot

    def next_value_may_be_taken(self) -> None:
        """A write reached the server while a value the next write takes was journaled
        (``SET insert_id``, ``gtid_seq_no``): it may have taken the value (and the server
        forgotten it), so it is replayed no more, and the session is held until the
        caller sets it again."""
        for variable, key in self.next_write.items():
            self.journal.pop(key, None)
            self.unrestorable.add(TAKEN_BY_A_WRITE[variable])
        self.next_write.clear()

    def state_made(self, effects: frozenset[str]) -> None:
        """A statement created session state no replay rebuilds (a temporary table, a
        user variable): the connection is never replaced by choice while it holds it."""
        if effects:
            self.unrestorable.update(effects)

    def take_lost_state(self) -> list[str]:
        """What a dead connection took with it that no replay can rebuild (once)."""
        lost = sorted(self.unrestorable)
        self.unrestorable.clear()
        return lost

    @staticmethod
    def connect_may_pass(kind: ErrorKind) -> bool:
        """Whether a connect error of ``kind`` may pass (worth another host or round)."""
        # NOT_READY: a set-up statement refused by a node that stopped serving after (or
        # without) the role check: another host, or the same one once it is back.
        return kind in _CONNECT_MAY_PASS

    def connect_failed(self, kind: ErrorKind, attempt: int, elapsed: float) -> float | None:
        """Seconds to wait before connecting again, or None to raise the error."""
        if self.retry is None or not self.connect_may_pass(kind):
            return None
        return self.retry.connect_wait(attempt, elapsed)

    @property
    def follows_read_only(self) -> bool:
        """Whether a server's refusal to write (read-only) sends the connection to another
        host: with several hosts, unless only read-only servers are wanted."""
        return self.failover is not None and self.failover.target is not Target.REPLICA

    # -- checkout ---------------------------------------------------------------

    @property
    def checks_liveness(self) -> bool:
        return self.ping is not None

    def checkout(self, now: float) -> Checkout:
        """The slow path of a checkout, once ``now >= next_check_at`` or when stale.

        ``next_check_at`` is a lower bound: a proxy may move ``last_used`` on after a
        plain read without touching it, so it is brought up to date here."""
        if self.stale:
            return Checkout(reconnect=self.stale_reason)
        due = self.last_used + self._idle_trigger
        self.next_check_at = due if due < self._expires_at else self._expires_at
        if self.history_lost:
            self.next_check_at = -_INF
        idle_for = now - self.last_used
        # A session holding state no replay can rebuild, or on the caller's socket (no
        # other way to its server is known), is never replaced by choice.
        if not self.unrestorable and not self.pinned:
            if now - self.connected_at >= self._lifetime:
                return Checkout(reconnect=Reason.MAX_AGE)
            if idle_for >= self._idle_limit:
                return Checkout(reconnect=Reason.IDLE)
        if self.ping is not None:
            timeout = self.ping.ping_timeout(idle_for)
            if timeout is not None:
                return Checkout(ping_timeout=timeout)
        return _PROCEED

    def used(self, now: float) -> None:
        """A ping or a plain read outside any transaction succeeded: all :meth:`done`
        would change is when the connection was last used (``next_check_at`` is a lower
        bound, brought up to date at the next :meth:`checkout`). The hot path."""
        self.last_used = now

    def tracking(
        self,
        on: bool,
        all_roll_back: bool = False,
        says_transaction: bool = False,
        on_connect: Iterable[str] = (),
    ) -> None:
        """What the new connection's server reports: writes it cannot roll back (a MySQL
        server through session tracking), or it has no such tables (PostgreSQL); and
        whether its replies say if a transaction is open (``says_transaction``). A
        setting of the caller's own (``on_connect``, the journal) may turn the server's
        report off: it is then not relied on."""
        if on:
            made = [record_of(sql) for sql in on_connect]
            # Several settings journaled as one entry hold their keys in their parts.
            replayed = [
                record_of(payload[0])
                for method, payload in self.journal.values()
                if method == "execute" and payload[0] is not None
            ]
            keys = [key for r in (*made, *replayed) for key in (r.key, *(k for k, _ in r.parts))]
            on = not (
                any(_tracking_key(key) for key in [*keys, *self.journal])
                or any(r.unsettles for r in made)
            )
        self.tracks = on or all_roll_back
        self.all_roll_back = all_roll_back
        self.says_transaction = says_transaction
        # A set-up statement that writes, or a journaled SET identity, may leave the new
        # session a last id the caller's statements did not generate.
        self.insert_id_set_up = any(_sets_identity(key) for key in self.journal) or any(
            record.kind is not StatementKind.SESSION
            or any(_sets_identity(key) for key in (record.key, *(k for k, _ in record.parts)))
            for record in map(record_of, on_connect)
        )

    def wrote_in_transaction(self, statement: Statement | None, kept: bool | None) -> None:
        """After a write (``statement``; None for a procedure, whose statements are not
        its text): whether the server said it wrote to a table it cannot roll back
        (None: its reply could not say, a result set). Inside an open transaction,
        without its word (no tracking, a text of several statements), it may have: if the
        transaction is lost, that part stays. Outside one, or once a kept write is
        counted, there is nothing to learn. A value the next write takes (``SET
        insert_id``) is no longer replayed: see :meth:`next_value_may_be_taken`."""
        if self.next_write:
            self.next_value_may_be_taken()
        if not self.txn_writes or self.kept:
            return
        if kept is False and self.tracks and statement in self.rolls_back:
            return  # learned already (the hot path of a transaction's writes)
        if self.all_roll_back or (statement is not None and statement.locks):
            return  # every table rolls back; row locks go with the session
        if kept is None and statement is not None and self._table_rolls_back(statement):
            kept = False  # rows answered for a table the server said rolls back whole
        if kept is not False or not self.tracks or (statement is not None and statement.opaque):
            self.kept = True
        elif (
            statement is not None
            and statement.atomic  # one statement, no routine of its own: it is the same each time
            and statement not in self.rolls_back
            and not self._moved()  # learned texts name the tables of the first database
        ):
            if len(self.rolls_back) >= _ROLLS_BACK_MAX:
                self.rolls_back.clear()  # forgetting only weakens a later claim
            self.rolls_back.add(statement)

    def _moved(self) -> bool:
        """Whether a name may mean another table than for the pool's other sessions: the
        current database may differ from the first, or a temporary table may shadow one."""
        return (
            self.moved or self.hidden_use or _USE in self.journal or _TEMPORARY in self.unrestorable
        )

    def _unsettled(self) -> None:
        """A text ran that may have turned the server's reports off or changed the
        current database without the scanner seeing it (:attr:`Statement.unsettles`):
        neither is relied on until the next connection."""
        self.tracks = self.all_roll_back
        self.moved = True

    def _tables_changed(self) -> None:
        """DDL (or a procedure, which may run some) may have changed what a text writes
        (``ALTER TABLE ... ENGINE=MyISAM``): the texts learned to write only tables that
        roll back, and what the server said of tables, are forgotten, for every
        connection that shares them."""
        self.rolls_back.clear()
        self.facts.tables.clear()

    def _table_rolls_back(self, statement: Statement) -> bool:
        """Whether the server said the one table ``statement`` writes rolls back whole,
        and the name still means that table on this session (no USE, no temporary table
        that could shadow it)."""
        table = statement.table
        return table is not None and self.facts.tables.get(table) is True and not self._moved()

    def unproven(self, statement: Statement) -> bool:
        """Inside a transaction, before sending: whether ``statement``, lost in flight,
        would be of unknown outcome (a write not shown to write only tables that roll
        back), so that a socket check first is worth its microseconds."""
        if self.kept or self.stale:
            return False
        if statement in self.rolls_back and not (
            # _moved(), written out: the common case of a transaction's writes.
            self.moved or self.hidden_use or _USE in self.journal or _TEMPORARY in self.unrestorable
        ):
            return False
        return not self._rolled_back_with(statement, True)

    def asks_table(self, statement: Statement, autocommit: bool) -> tuple[str, str] | None:
        """Before sending a write answered with rows (``INSERT ... RETURNING``, whose reply
        cannot name a table the server keeps) inside a transaction: the table to ask the
        server about first, once per table for every connection sharing these facts.
        Asking before the write changes nothing the caller could see (the write resets
        what a statement leaves behind)."""
        table = statement.table
        if (
            table is None
            or table in self.facts.tables
            or self.all_roll_back
            or (autocommit and not self.txn_writes)  # no transaction to prove anything of
            or self._moved()
        ):
            return None
        return table

    def table_known(self, table: tuple[str, str], rolls_back: bool) -> None:
        """The server's answer to :meth:`asks_table`."""
        tables = self.facts.tables
        if len(tables) >= _ROLLS_BACK_MAX:
            tables.clear()  # forgetting only costs a question
        tables[table] = rolls_back

    def table_unanswered(self, table: tuple[str, str], code: Code) -> None:
        """The question about ``table`` failed on a live connection with ``code``: a
        refusal (privileges) is remembered as "perhaps kept", asked no more; a passing
        failure (KILL QUERY, a statement timeout) is not remembered. Either way the write
        goes on as perhaps kept."""
        if self.errors.kind(code) is ErrorKind.OTHER:
            self.table_known(table, False)

    def server_kept(self) -> None:
        """The server reported, in a reply not judged yet (a procedure's last result,
        drained by the driver before the next statement), a write to a table it cannot
        roll back in the open transaction."""
        if self.txn_writes:
            self.kept = True

    def _rolled_back_with(self, statement: Statement, sent: bool) -> bool:
        """Whether ``statement``, lost with the transaction it ran in, provably left
        nothing behind: not sent, a read, or a text the server was seen to write only
        tables it rolls back with."""
        kind = statement.kind
        return (
            not sent
            or self.all_roll_back
            or kind is StatementKind.READ
            or kind is StatementKind.SESSION  # a setting writes no table
            or statement.locks
            or (statement in self.rolls_back and not self._moved())
            or self._table_rolls_back(statement)
        )

    def asks_lost_history(self, statement: Statement) -> bool | None:
        """Before sending on a session that replaced another: whether ``statement`` asks
        about the session's history, which went with the old one (the new one would
        answer ``LAST_INSERT_ID()`` for itself). True: refused (once: after that, it is
        the new session's history that is asked about); False: sent. Before anything
        ran on the new session (``history_lost``) every such question is refused. The
        last generated id alone (:attr:`Statement.insert_id`) outlasts the statements
        after it: until asked, refused, unless a write ran on the new session since (and
        its set-up made no id): then None, ask the server first (:meth:`insert_id_asked`)."""
        if not statement.history:
            return False
        if self.history_lost:
            self.history_lost = False
            if statement.insert_id:
                self.insert_id_lost = False
            return True
        if statement.insert_id and self.insert_id_lost:
            if self.wrote_since_replaced and not self.insert_id_set_up:
                return None
            # No write on the new session, or its set-up may have made the id: whatever
            # it answers is not the caller's statements'.
            self.insert_id_lost = False
            return True
        return False

    def wrote_on_new_session(self) -> None:
        """A write ran on a session that replaced another, whose last generated id the
        caller may yet ask about (``insert_id_lost``): an id it answers may now be one
        of this session's inserts (see :meth:`asks_lost_history`)."""
        self.wrote_since_replaced = True

    def insert_id_asked(self, made: bool) -> bool:
        """The new session's last generated id, asked before a statement asking about it
        (``asks_lost_history`` said None): ``made``, not 0, an insert on this session
        generated it, and the statement asks about this session's; else it asks about
        the old one's and is refused (True). Either way, asked once."""
        self.insert_id_lost = False
        return not made

    def on_callers_socket(self, pinned: bool) -> None:
        """The next session runs on a socket the caller gave (True), or is opened by the
        connect arguments (False). A pinned one is never replaced: its failures are the
        driver's errors, and a statement after its loss is refused (see ``pinned``)."""
        self.pinned = pinned

    def host_marked(self) -> bool:
        """Before a send outside a transaction with writes: another connection found this
        one's host unreachable or in the wrong role. Whether to replace it now (then it
        is stale): not a session holding state no replay rebuilds, nor one on the
        caller's socket (never replaced by choice: each finds out for itself)."""
        if self.stale or self.unrestorable or self.pinned:
            return False
        self.must_replace(Reason.HOST_MARKED)
        return True

    def must_replace(self, reason: Reason, code: Code | None = None) -> None:
        """The physical connection is dead or due: replace it before the next use."""
        self.stale = True
        self.stale_reason = reason
        self.stale_code = code

    # -- statements -------------------------------------------------------------

    def done(self, statement: Statement, in_trans: bool, autocommit: bool, now: float) -> None:
        """A statement (or commit/rollback) succeeded; the server reported these flags.

        The hot path: for a plain read or a setting outside any transaction only the
        times change (and a new session now has a history of its own)."""
        self.last_used = now
        self.history_lost = False
        due = now + self._idle_trigger
        self.next_check_at = due if due < self._expires_at else self._expires_at
        kind = statement.kind
        if self.txn_writes:
            if in_trans and statement.steady:
                # The transaction goes on (what the general rules below come to).
                if kind is not _READ and not autocommit:
                    self.sticky = True
                elif autocommit and not self.explicit:
                    self.sticky = False
                return
        elif not in_trans and not self.xa_open:  # an XA branch left open: the general rules
            if kind is _READ or kind is StatementKind.SESSION:
                return
            if autocommit and statement.steady:
                self.kept = False  # a write committed as it ran: nothing is open
                return
        commits = statement.commits
        if statement.reshapes:
            self._tables_changed()
        if statement.unsettles:
            self._unsettled()
        if commits is True or kind is StatementKind.BEGIN:
            self.explicit = self.sticky = False  # the server committed what was open
        if kind is StatementKind.BEGIN:
            self.explicit = True
        elif kind is StatementKind.COMMIT or kind is StatementKind.ROLLBACK:
            # AND CHAIN (or completion_type) opened the next one at once: it is open
            # whatever a driver without the server's flag reports.
            self.explicit = self._chains(statement)
            self.sticky = False
        elif kind is StatementKind.WRITE and not autocommit:
            # DDL commits as it ends: nothing is open after it if the server says so
            # (PostgreSQL's DDL is transactional, and its driver reports the block open).
            self.sticky = not (statement.self_commits and self.says_transaction and not in_trans)
        if autocommit and not self.explicit:
            self.sticky = False
        ended = kind is StatementKind.COMMIT or kind is StatementKind.ROLLBACK
        if ONE_SHOT in self.unrestorable:
            if (ended and statement is not AUTOCOMMIT_OP) or (
                commits is True and self.one_shot_applied
            ):
                # The server spent SET TRANSACTION's setting: COMMIT and ROLLBACK (with
                # nothing open too), or an implicit commit (DDL, BEGIN) of the
                # transaction it shaped. Not autocommit(True), SET autocommit, UNLOCK
                # TABLES with nothing open (measured); DDL with nothing open or a
                # statement under autocommit would, but the weaker claim holds it.
                self._one_shot_spent()
            elif kind is StatementKind.BEGIN or in_trans:
                self.one_shot_applied = True
        if (ended or commits is not False) and self.replay is not None:
            # What the log held is committed or rolled back: never to be run again. A
            # transaction open after it (chained on, or DDL under autocommit off) was
            # opened without a BEGIN a replay could repeat; BEGIN starts its own log.
            self._log_reset()
            self.txn_log_ok = kind is StatementKind.BEGIN
        xa = statement.xa
        if xa:
            if xa in _XA_OPENS:
                self.xa_open = True
            elif xa in _XA_ENDS:
                self.xa_open = False
        if self.says_transaction and kind in _STATUS_FRESH:
            # The server's word over the text's: ``SET autocommit = 'ON'`` committed,
            # ``autocommit(True)`` with autocommit on did not, ``COMMIT AND CHAIN``
            # opened one. Only after these: PyMySQL keeps the flags of OK packets, not of
            # a result set's end (an INSERT ... RETURNING leaves the last OK's flags).
            if not in_trans:
                self.explicit = self.sticky = False
            ended = False
        # An XA branch, prepared or not, is never replaced silently: it may outlive the
        # session (XA PREPARE), and whatever it held is then not provably rolled back.
        self.txn_writes = self.explicit or self.sticky or (in_trans and not ended) or self.xa_open
        if not self.txn_writes:
            self.kept = False
            if self.txn_log or not self.txn_log_ok:
                self._log_reset()

    def ended_unseen(self) -> None:
        """Before sending: the driver reports no transaction where one with writes was
        open (psycopg's ``transaction()`` committed it past the proxy): it is over."""
        self._transaction_over()
        self.kept = False
        self._log_forget()

    def driver_transaction(self, in_trans: bool) -> None:
        """Before sending: the driver reports a transaction open (or not), perhaps opened
        through its own API, unseen by the proxy. One it reports is never replaced
        silently: what was in it is unknown, so it counts as holding writes. It only
        ever raises the flag: a driver that lost its connection may report "no
        transaction" (psycopg's UNKNOWN status); the next statement's outcome lowers it."""
        if in_trans:
            if not self.txn_writes:
                self.txn_log_ok = False  # opened past the proxy: how is not known
            self.txn_writes = True

    # -- verified replay (ReplayTransaction) ------------------------------------

    def log_statement(self, statement: Statement, entry: LogEntry, size: int, now: float) -> None:
        """:meth:`logged` for the proxy's common case, which it checked: replay on, a
        transaction with writes open whose log is still replayable, an entry to keep."""
        log = self.txn_log
        replay = self.replay
        if (
            log
            and replay is not None
            and not statement.unreplayable
            and statement.kind is not StatementKind.BEGIN
            and len(log) < replay.max_statements
            and self.txn_bytes + size <= replay.max_bytes
            and now - self.txn_started <= replay.max_seconds
        ):
            log.append(entry)
            self.txn_bytes += size
            return
        self.logged(statement, entry, size, now)

    def logged(
        self,
        statement: Statement,
        entry: LogEntry | None,
        size: int,
        now: float,
        implicit: bool = False,
    ) -> None:
        """After a statement succeeded (and :meth:`done`), with replay on: keep it for a
        replay while a transaction is open (``entry`` None: it cannot be replayed, as an
        unbuffered result or a driver method past the log). ``implicit``: autocommit is
        off, so whatever ran since the last transaction ended is part of the next one
        (kept, though no transaction with writes is open yet). A transaction that
        outgrows the policy's limits, or ran what a replay could not reproduce or check,
        is not replayed; the log starts again with the next transaction."""
        replay = self.replay
        if replay is None:
            return
        log = self.txn_log
        if (
            # The common case, written out: a statement inside a replayable transaction.
            log
            and entry is not None
            and (self.txn_writes or implicit)
            and self.txn_log_ok
            and not statement.unreplayable
            and statement.kind is not StatementKind.BEGIN
            and len(log) < replay.max_statements
            and self.txn_bytes + size <= replay.max_bytes
            and now - self.txn_started <= replay.max_seconds
        ):
            log.append(entry)
            self.txn_bytes += size
            return
        kind = statement.kind
        if not self.txn_writes and (
            not implicit
            or kind is StatementKind.COMMIT
            or kind is StatementKind.ROLLBACK
            or statement.commits is True  # DDL: what was open is committed
            # A setting before anything of the transaction ran is journaled and
            # replayed first on a new connection: in the same order as it ran.
            or (not log and self.txn_log_ok and kind is StatementKind.SESSION)
        ):
            self._log_reset()
            return
        if kind is StatementKind.BEGIN:
            self._log_reset()  # BEGIN committed what was open: a new transaction
            log = self.txn_log
        if not log and self.txn_log_ok:
            self.txn_started = now
        if not self.txn_log_ok:
            return
        if (
            entry is None
            or statement.unreplayable
            or len(log) >= replay.max_statements
            or self.txn_bytes + size > replay.max_bytes
            or now - self.txn_started > replay.max_seconds
        ):
            self.txn_log_ok = False
            log.clear()
            return
        log.append(entry)
        self.txn_bytes += size

    def _log_reset(self) -> None:
        self.txn_log = []
        self.txn_log_ok = True
        if self.replaying is None:  # a replayed BEGIN must not undo the bound on replays
            self.txn_bytes = 0
            self.txn_replays = 0

    def _log_forget(self) -> None:
        """The transaction is over without a replay: its log goes (a statement of it must
        never run again in the next one)."""
        if self.txn_log or not self.txn_log_ok or self.replaying is not None:
            self._log_reset()
            self.replaying = None

    def _replayable(self, op: Op) -> bool:
        """Whether the transaction being lost (provably rolled back) can be replayed."""
        return (
            self.replay is not None
            and self.txn_log_ok
            and (op is Op.EXECUTE or op is Op.EXECUTEMANY or op is Op.COMMIT)
            and not self.unrestorable
            and not self.pinned
            and self.txn_replays < _MAX_REPLAYS
            and self.last_used - self.txn_started <= self.replay.max_seconds
        )

    def replayed(self) -> None:
        """The new connection ran :attr:`replaying` and every digest matched (the proxy
        fed each statement to :meth:`done`): the transaction goes on, replayable again."""
        entries = self.replaying or ()
        self.replaying = None
        self.txn_log = list(entries)
        self.lost = False
        self.lost_code = None

    def replay_failed(self, uncertain: bool = False) -> None:
        """The replay diverged, failed, or could not start: the transaction is lost, as
        without replay (its connection given up, so the server rolls it back); or, when
        the replay left something the server may keep (``uncertain``: a write to a table
        that cannot roll back, a statement that ended the transaction), of unknown
        outcome."""
        self.replaying = None
        self.must_replace(Reason.ERROR, self.replay_code)
        self._transaction_over()
        self._log_reset()
        if uncertain:
            self._uncertain(self.replay_code)
        else:
            self.lost = True
            self.lost_code = self.replay_code

    def is_dead(self, code: Any) -> bool:
        """Whether the driver error ``code`` says the connection is gone."""
        kind = self.errors.kind(code)
        return kind is ErrorKind.DEAD or kind is ErrorKind.TLS_BROKEN

    def asks_role(self, code: Any) -> bool:
        """Whether a failure with ``code`` needs the server asked its role (read-only
        after a failover demoted it, or not ready: a cluster node that stopped serving,
        which answers 1047, or 1205 where ``wsrep_sync_wait`` makes a statement wait for
        the cluster first) before :meth:`failed` can judge it."""
        kind = self.errors.kind(code)
        if kind is ErrorKind.READ_ONLY:
            return self.follows_read_only
        return kind in _ASKS_READY and self.failover is not None

    def refusal_role(self, code: Any) -> Role | None:
        """The role a refusal with ``code`` stands for when the server cannot be asked
        (the connection went meanwhile); None when it stands for none."""
        return _REFUSAL_ROLES.get(self.errors.kind(code))

    def failed(
        self,
        op: Op,
        statement: Statement,
        code: Any,
        *,
        sent: bool,
        autocommit: bool,
        resends: int,
        role: Role | None = None,
        autocommit_known: bool = True,
        closing: bool = False,
    ) -> Verdict:
        """An operation raised the driver error ``code``; decide what the caller sees.

        ``sent`` is False only when the driver proves the command never reached the
        server; ``resends`` counts how often this call was already sent again; ``role`` is
        what the server, asked after a refusal (:meth:`asks_role`), says it is now: a
        refusal to write counts only from a read-only server, else it is the caller's own
        error (their READ ONLY transaction, ``--secure-file-priv``), and a refusal to serve
        (1047) only from a server not ready (else: "Unknown command"). ``autocommit_known``
        is False when the driver's autocommit flag is only a guess: a transaction then never
        counts as provably rolled back (its writes may have committed one by one).
        ``closing``: ``close()`` was called meanwhile (from another thread, aborting the
        operation): nothing is sent again, as after an interruption.
        """
        error = self.errors.kind(code)
        dead_reason = Reason.ERROR
        if error is ErrorKind.STATEMENT_ABORTED and role is Role.NOT_READY and not self.pinned:
            # Stopped on a node that serves nothing (a causal wait that failed): whether
            # it began cannot be told, so it counts as a connection lost once sent, the
            # node left for another.
            error, dead_reason = ErrorKind.DEAD, Reason.NOT_READY
        elif error is ErrorKind.READ_ONLY or error is ErrorKind.NOT_READY:
            if self.pinned:
                error = ErrorKind.OTHER  # a pinned session stays
            elif role is Role.NOT_READY:
                error = ErrorKind.NOT_READY  # refused before it ran, whatever the code said
            elif error is ErrorKind.NOT_READY or role is not Role.READ_ONLY:
                error = ErrorKind.OTHER  # the caller's own error
        elif error is ErrorKind.TLS_BROKEN:
            error = ErrorKind.DEAD  # on a connection that was open: its stream broke
        # A replay needs a transaction known to be rolled back, a caller still there, and
        # a session that may be replaced.
        replay = (
            op
            if autocommit_known and not closing and not self.pinned and not statement.history
            else None
        )
        verdict = self._judge(
            op, statement, error, sent, autocommit, resends, code, dead_reason, replay
        )
        if not self.txn_writes and verdict is not Verdict.REPLAY:
            self._log_forget()  # the transaction is over (lost, rolled back, ended)
        if verdict is Verdict.TRANSACTION_LOST and not autocommit_known:
            self.lost_uncertain = True
            return Verdict.OUTCOME_UNKNOWN
        if (closing or self.pinned) and (
            verdict is Verdict.RESEND or verdict is Verdict.SESSION_LOST
        ):
            return Verdict.RAISE
        return verdict

    def _judge(
        self,
        op: Op,
        statement: Statement,
        error: ErrorKind,
        sent: bool,
        autocommit: bool,
        resends: int,
        code: Any,
        dead_reason: Reason = Reason.ERROR,
        replay: Op | None = None,
    ) -> Verdict:
        kind = statement.kind
        commits = statement.commits
        if sent:
            if self.next_write and kind is StatementKind.WRITE:
                self.next_value_may_be_taken()  # a write that failed may have taken it
            # Part of it may have run: a USE before a failing INSERT, a procedure's DDL.
            if statement.unsettles:
                self._unsettled()
            if statement.reshapes:
                self._tables_changed()
        if error is ErrorKind.TRANSACTION_ROLLED_BACK:
            self._transaction_over()
            return Verdict.RAISE
        if error is ErrorKind.COMMIT_UNCERTAIN:
            in_transaction = self.txn_writes or not autocommit
            self.must_replace(Reason.COMMIT_FAILED, code)
            self._transaction_over()
            # Never RECOVERED: a failed commit means there was something to commit, even
            # where the writes were opened past the proxy.
            return self._uncertain(code) if in_transaction else Verdict.OUTCOME_UNKNOWN
        if error is ErrorKind.READ_ONLY and self.follows_read_only:
            return self._refused(Reason.READ_ONLY, op, statement, resends, code, autocommit, replay)
        if error is ErrorKind.NOT_READY and self.failover is not None:
            return self._refused(Reason.NOT_READY, op, statement, resends, code, autocommit, replay)
        if error is not ErrorKind.DEAD:
            if (op is Op.COMMIT or kind is StatementKind.COMMIT) and self.txn_writes:
                # A COMMIT the server refused on a live connection (KILL QUERY's 1317,
                # read-only's 1290) ended the transaction, rolled back. The driver's error
                # is raised as it is; until rollback(), everything raises
                # TransactionLostError, so a commit() tried again cannot report success
                # with nothing committed.
                self._transaction_over()
                self.lost = True
                self.lost_code = code
                return Verdict.RAISE
            if (
                (self.txn_writes or not autocommit)
                and kind is not StatementKind.READ
                and (kind is not StatementKind.SESSION)
            ):
                # It may have written part-way (executemany's earlier rows, a procedure's
                # first statements) inside the open transaction; to a table that keeps
                # them (a multi-row INSERT into MyISAM keeps the rows before the failing
                # one), unless the text was seen to write only tables that roll back:
                # the server reports no transaction state with an error.
                self.sticky = self.txn_writes = True
                if not self._rolled_back_with(statement, True):
                    self.kept = True
                # Rows it applied before failing (executemany's) are in the transaction
                # but not in the log: a replay could not reproduce them.
                self.txn_log_ok = False
                self.txn_log = []
            return Verdict.RAISE
        had_writes = self.txn_writes
        self.must_replace(dead_reason, code)
        self._transaction_over()  # the server rolls back whatever was open
        if op is Op.ROLLBACK or kind is StatementKind.ROLLBACK:
            if self._chains(statement):
                return self._chain_lost(code)
            self._one_shot_spent()  # as the ROLLBACK would have, had it arrived
            return Verdict.RECOVERED
        ends = (
            op is Op.COMMIT
            or kind is StatementKind.COMMIT
            or kind is StatementKind.BEGIN
            or commits is not False
        )
        if ends and had_writes:
            # The open transaction was committed, or not, before the connection died.
            return self._uncertain(code) if sent else self._lose(code, replay)
        if op is Op.COMMIT or kind is StatementKind.COMMIT:
            if self._chains(statement):
                return self._chain_lost(code)
            if statement is not AUTOCOMMIT_OP:
                self._one_shot_spent()  # as the COMMIT would have, had it arrived
            return Verdict.RECOVERED  # nothing was written: nothing to commit
        if had_writes:
            if not self._rolled_back_with(statement, sent):
                return self._uncertain(code)  # it may have written where nothing rolls back
            return self._lose(code, replay)
        if op is Op.FETCH:
            return Verdict.RAISE  # rows were handed out already: the read cannot resume
        safe = not sent or (op is Op.EXECUTE and statement.resendable)
        if op is Op.EXECUTEMANY:
            safe = False  # earlier rows may have been applied before the failure
        if safe:
            if self.unrestorable:
                return Verdict.SESSION_LOST
            if self.retry is not None and self.retry.may_resend(resends):
                return Verdict.RESEND
            return Verdict.RAISE
        if autocommit:
            return Verdict.OUTCOME_UNKNOWN  # the server may have committed it
        if commits is True:
            # DDL commits before and after itself: it was alone in its transaction, and
            # nothing the caller goes on with was open with it.
            return Verdict.OUTCOME_UNKNOWN
        if commits is None:
            # A procedure (or a verb the scanner cannot vouch for) may have committed, or
            # left its writes in the transaction the caller would go on with.
            return self._uncertain(code)
        if not self._rolled_back_with(statement, sent):
            return self._uncertain(code)  # it may have written where nothing rolls back
        return self._lose(code, replay)  # a write inside the implicit transaction: rolled back

    def _refused(
        self,
        reason: Reason,
        op: Op,
        statement: Statement,
        resends: int,
        code: Any,
        autocommit: bool,
        replay: Op | None = None,
    ) -> Verdict:
        """The server refused the operation before running it because it is read-only
        now, or serves nothing (``reason``; the proxy asked it). The connection goes,
        which rolls back what was open on it, and the next one is made on another host.
        Only a refused single atomic statement is provably not applied at all, so only
        that is sent again."""
        kind = statement.kind
        had_writes = self.txn_writes
        self.must_replace(reason, code)
        self._transaction_over()
        if op is Op.ROLLBACK or kind is StatementKind.ROLLBACK:
            return Verdict.RECOVERED
        if op is Op.COMMIT or kind is StatementKind.COMMIT:
            # What it would have committed is rolled back with the connection. A read-only
            # server refuses only a COMMIT with writes (some perhaps opened past the proxy);
            # a node that serves nothing refuses any: the weaker claim covers both.
            return self._lose(code)
        if had_writes:
            if statement.commits is not False:
                # DDL commits what was open before it runs: whether that happened before
                # the refusal cannot be told.
                return self._uncertain(code)
            return self._lose(code, replay)
        if op is Op.FETCH:
            return Verdict.RAISE  # rows were handed out already
        if op is not Op.EXECUTE or not statement.atomic:
            # executemany's earlier rows, a procedure's earlier statements, the first of
            # several statements may have been applied before the refusal.
            return Verdict.OUTCOME_UNKNOWN if autocommit else self._lose(code)
        if self.unrestorable:
            return Verdict.SESSION_LOST
        if self.retry is not None and self.retry.may_resend(resends):
            return Verdict.RESEND
        return Verdict.RAISE

    def interrupted(
        self,
        op: Op,
        statement: Statement,
        *,
        autocommit: bool,
        autocommit_known: bool = True,
        code: Any = None,
    ) -> Verdict:
        """A cancellation or ``KeyboardInterrupt`` stopped an operation that may have been
        sent. The proxy abandons the connection, so it counts as dead after sending; the
        verdict says what was lost, and nothing is ever sent again (the interruption
        propagates). ``code`` is the driver's "connection gone" code, which the errors
        raised afterwards carry."""
        verdict = self._judge(op, statement, ErrorKind.DEAD, True, autocommit, 0, code)
        self._log_forget()
        if verdict is Verdict.TRANSACTION_LOST and not autocommit_known:
            self.lost_uncertain = True
            verdict = Verdict.OUTCOME_UNKNOWN
        # Safe to send again, but the caller asked to stop. Session state the connection
        # held is still reported (SessionLostError) when it is replaced.
        return Verdict.RAISE if verdict in (Verdict.RESEND, Verdict.SESSION_LOST) else verdict

    def _chains(self, statement: Statement) -> bool:
        """Whether the COMMIT or ROLLBACK would have opened a new transaction as it ended
        the last (``AND CHAIN``; the server's own ``completion_type`` when not ``NO_CHAIN``;
        any after ``SET completion_type``, whatever its value: the weaker
        claim)."""
        return (
            statement.chains
            or self.facts.chains is True
            or self.chains_untold
            or (bool(self.journal) and any("completion_type" in key for key in self.journal))
        )

    def asks_completion(self) -> bool:
        """Whether a new connection must ask its server's ``completion_type`` (once for
        every connection sharing these facts; after ``on_connect``, before the journal)."""
        return self.facts.chains is None

    def completion_known(self, chains: bool | None) -> None:
        """The server's answer: whether COMMIT and ROLLBACK chain (or release) by default;
        None: it would not say (every end of this connection may chain; asked again on
        the next)."""
        self.chains_untold = chains is None
        if chains is not None:
            self.facts.chains = chains

    def _chain_lost(self, code: Code | None) -> Verdict:
        """A COMMIT or ROLLBACK that chains died with its connection: what it ended is
        rolled back (nothing was written), but the transaction it opened is not on a new
        session, where each statement would commit on its own. Lost until rollback()."""
        self.lost = True
        self.lost_code = code
        return Verdict.TRANSACTION_LOST

    def _lose(self, code: Code | None, replay: Op | None = None) -> Verdict:
        """The open transaction died with its connection, rolled back by the server:
        until rollback(), everything raises TransactionLostError; unless ``replay`` (the
        operation that found the loss) may go on after a verified replay."""
        if self.xa_open or self.kept:
            # A prepared XA branch survives its session, a non-transactional table keeps
            # its rows: nothing is proven rolled back.
            return self._uncertain(code)
        if replay is not None and self._replayable(replay):
            self.replaying = tuple(self.txn_log)
            self.replay_code = code
            self.txn_log = []
            self.txn_replays += 1
            # Lost until the replay succeeds: whatever comes before it (a commit(), a
            # reopen, a close) sees a lost transaction, never an empty one.
            self.lost = True
            self.lost_code = code
            return Verdict.REPLAY
        self.lost = True
        self.lost_code = code
        return Verdict.TRANSACTION_LOST

    def _uncertain(self, code: Code | None) -> Verdict:
        """The open transaction's writes may have committed, or not: until rollback(),
        everything raises OutcomeUnknownError (a commit() tried again must not report
        success for work whose fate is unknown)."""
        self.lost = self.lost_uncertain = True
        self.lost_code = code
        self.xa_open = False
        return Verdict.OUTCOME_UNKNOWN

    def _transaction_over(self) -> None:
        # ``kept`` stays until done() sees no transaction or a new connection: the loss
        # being judged is of the transaction that kept it.
        self.explicit = self.sticky = self.txn_writes = False

    def rollback_needs_sending(self) -> bool:
        """``rollback()`` was called: whether to send a ROLLBACK. Not when a transaction
        was lost with its connection (the server rolled it back as the connection went):
        the loss is acknowledged at once."""
        if self.lost and self.stale:
            self.rolled_back()
            return False
        return True

    def rollback_failed(self) -> None:
        """The ROLLBACK failed. If that gave the connection up, the server rolls back as it
        goes: the loss is acknowledged; otherwise the transaction may still be open, and
        a lost one stays guarded."""
        if self.stale:
            self.rolled_back()

    def reopened(self, code: Code | None) -> Verdict | None:
        """The caller asked for a closed connection again (the driver's
        ``ping(reconnect=True)``): a new session, built from the journal. Session state
        no replay rebuilds went with the caller's own close(); a transaction with writes
        did too, but it is named (``code``, the driver's "gone"): until rollback(), as
        after any loss, so that a task that did not close it cannot go on as if its
        writes were there."""
        verdict = None
        if self.txn_writes and not self.lost:
            verdict = self._lose(code)  # or outcome unknown: a kept write, an XA branch
        self._log_forget()
        self._transaction_over()
        self.xa_open = False
        self.unrestorable.clear()
        self.must_replace(Reason.REOPENED)
        return verdict

    def _one_shot_spent(self) -> None:
        self.unrestorable.discard(ONE_SHOT)
        self.one_shot_applied = False

    def rolled_back(self) -> None:
        """``rollback()`` was called: a lost transaction is acknowledged."""
        # The caller's rollback() spends a pending SET TRANSACTION on the server as it
        # would have without the loss (the drivers always send it): nothing to rebuild.
        self._one_shot_spent()
        self.lost = False
        self.lost_code = None
        self.lost_uncertain = False
        self._log_forget()
        self._transaction_over()
