"""A replicated MariaDB pair and its failover drill, for failover tests.

``ReplicatedPair()`` runs two :class:`~resilient_dbapi.testing.MariaDBServer` as a primary
and its replica; ``failover_drill()`` kills the primary under writers, promotes the replica
and checks every write with a :class:`~resilient_dbapi.testing.WriteLedger`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .ledger import LedgerCheck, WriteLedger
from .pg_replication import StandbyPair
from .servers import AppUser, MariaDBServer

__all__ = ["FailoverDrill", "ReplicatedPair", "failover_drill"]

_REPLICATION_ARGS = (
    "--log-bin=mysql-bin",
    "--binlog-format=ROW",
    "--log-slave-updates",
    "--gtid-strict-mode=ON",
)


def _launch_mariadb(extra_args: tuple[str, ...]) -> MariaDBServer:
    server = MariaDBServer(extra_args=extra_args)
    try:
        return server.start()
    except BaseException:
        server.remove()
        raise


def _slave_status(cur: Any) -> dict[str, Any]:
    cur.execute("SHOW SLAVE STATUS")
    row = cur.fetchone()
    if row is None:
        return {}
    return {column[0]: value for column, value in zip(cur.description, row, strict=True)}


def _describe(status: dict[str, Any]) -> str:
    keys = ("Slave_IO_Running", "Slave_SQL_Running", "Last_IO_Error", "Last_SQL_Error")
    return ", ".join(f"{key}={status.get(key)!r}" for key in keys)


class ReplicatedPair(AppUser):
    """A MariaDB primary and a replica following it (GTID, semi-sync), for failover tests.

    Two :class:`MariaDBServer` on loopback: the replica is read-only and replicates from
    the primary as root, with strict GTID mode; with ``semi_sync`` a commit on the primary
    is acknowledged only once the replica has received it (AFTER_SYNC), falling back to
    asynchronous after 2 s without a reply. ``start()`` creates the database ``app`` and
    the user ``app`` on the primary, which replicate; the user lacks SUPER and READ ONLY
    ADMIN, so ``read_only`` binds it. ``kill_primary()`` then ``promote()`` is a failover.
    """

    primary: MariaDBServer
    replica: MariaDBServer
    drill_table: str = "n BIGINT AUTO_INCREMENT PRIMARY KEY, uid VARCHAR(64) NOT NULL"
    """The columns of :func:`failover_drill`'s table."""

    def __init__(self, *, semi_sync: bool = True) -> None:
        self.semi_sync = semi_sync
        self._started = False
        self._promoted = False

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> ReplicatedPair:
        """Start both servers, replication, and the ``app`` database and user."""
        if self._started:
            return self
        primary_args: tuple[str, ...] = (*_REPLICATION_ARGS, "--server-id=1")
        replica_args: tuple[str, ...] = (
            *_REPLICATION_ARGS,
            "--server-id=2",
            "--read-only",
            "--skip-slave-start",
        )
        if self.semi_sync:
            primary_args += (
                "--rpl-semi-sync-master-enabled=ON",
                "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
                "--rpl-semi-sync-master-timeout=2000",
            )
            replica_args += ("--rpl-semi-sync-slave-enabled=ON",)
        # Each server's mariadb-install-db takes most of a second: run both at once.
        with ThreadPoolExecutor(max_workers=2) as pool:
            launches = [pool.submit(_launch_mariadb, args) for args in (primary_args, replica_args)]
        failures = [exc for launch in launches if (exc := launch.exception()) is not None]
        if failures:
            for launch in launches:
                if launch.exception() is None:
                    launch.result().remove()
            raise failures[0]
        self.primary, self.replica = (launch.result() for launch in launches)
        try:
            self._replicate()
            # On the primary, so that the replica gets them through replication: a root
            # write on the replica would give it GTIDs of its own and break strict mode.
            with contextlib.closing(self.primary.admin()) as conn:
                self.create_app(conn)
            self.wait_caught_up()
        except BaseException:
            self.remove()
            raise
        self._started = True
        return self

    def _replicate(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with contextlib.closing(self.replica.admin()) as conn, conn.cursor() as cur:
            # Fresh data directories hold no GTIDs, so slave_pos starts both at the same
            # (empty) position. Retry every second: the default 60 s would outlast a test.
            cur.execute(
                "CHANGE MASTER TO MASTER_HOST='127.0.0.1', "
                f"MASTER_PORT={int(self.primary.port)}, MASTER_USER='root', "
                "MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
            )
            cur.execute("START SLAVE")
            while True:
                status = _slave_status(cur)
                running = (status.get("Slave_IO_Running"), status.get("Slave_SQL_Running"))
                if running == ("Yes", "Yes"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replication did not start: {_describe(status)}")
                time.sleep(0.02)
        if self.semi_sync:
            # The IO thread runs a little before the primary counts it as a semi-sync
            # client; a commit in between would wait for the 2 s timeout and go async.
            with contextlib.closing(self.primary.admin()) as conn, conn.cursor() as cur:
                while True:
                    cur.execute("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'")
                    if int(cur.fetchone()[1]) >= 1:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError("the replica never registered as a semi-sync client")
                    time.sleep(0.02)

    def remove(self) -> None:
        """Kill both servers and delete their data."""
        # SIGKILL: the data is thrown away, so a clean shutdown would only cost time.
        for name in ("replica", "primary"):
            server: MariaDBServer | None = getattr(self, name, None)
            if server is not None:
                server.stop(kill=True)
                server.remove()

    def __enter__(self) -> ReplicatedPair:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    # -- using it -----------------------------------------------------------------------

    def hosts(self) -> list[tuple[str, int]]:
        """``(host, port)`` of the primary then the replica (the same after promote())."""
        return [("127.0.0.1", self.primary.port), ("127.0.0.1", self.replica.port)]

    def writable(self) -> MariaDBServer:
        """The server taking writes: the primary, or the replica once promoted."""
        return self.replica if self._promoted else self.primary

    def wait_caught_up(self, timeout: float = 10.0) -> None:
        """Wait until the replica has applied everything the primary has logged."""
        if self._promoted:
            raise RuntimeError("the replica was promoted: it follows nothing any more")
        with contextlib.closing(self.primary.admin()) as conn, conn.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            position = cur.fetchone()[0]
        with contextlib.closing(self.replica.admin()) as conn, conn.cursor() as cur:
            cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (position, timeout))
            if cur.fetchone()[0] != 0:
                raise TimeoutError(
                    f"the replica did not reach {position!r} within {timeout} s: "
                    f"{_describe(_slave_status(cur))}"
                )

    # -- failover -----------------------------------------------------------------------

    def kill_primary(self) -> None:
        """SIGKILL the primary, a crash; returns once the process is dead."""
        self.primary.stop(kill=True)

    def promote(self) -> float:
        """Make the replica a writable primary; returns the seconds this took.

        Applies every transaction the replica received before stopping replication: with
        semi-sync those include every commit the old primary acknowledged, and RESET
        SLAVE ALL deletes the relay logs, so stopping without the wait would lose them.
        """
        if self._promoted:
            raise RuntimeError("the replica was promoted already")
        began = time.monotonic()
        with contextlib.closing(self.replica.admin()) as conn, conn.cursor() as cur:
            cur.execute("STOP SLAVE IO_THREAD")
            received = _slave_status(cur)["Gtid_IO_Pos"]
            cur.execute("SELECT MASTER_GTID_WAIT(%s, 30)", (received,))
            if cur.fetchone()[0] != 0:
                raise TimeoutError(
                    f"the replica did not apply {received!r} within 30 s: "
                    f"{_describe(_slave_status(cur))}"
                )
            cur.execute("STOP SLAVE")
            cur.execute("RESET SLAVE ALL")
            cur.execute("SET GLOBAL read_only = 0")
        self._promoted = True
        return time.monotonic() - began


@dataclass
class FailoverDrill:
    """What :func:`failover_drill` saw: the ledger's check on the promoted server, and
    the timings (seconds)."""

    check: LedgerCheck
    promotion: float
    """From the kill until ``promote()`` returned: the wait before it and the promotion
    itself (excluded from the failover times)."""
    first_write: float
    """From the primary's death to the first write acknowledged by the promoted server,
    promotion excluded."""
    all_writers: float
    """The same, until every writer had one."""
    acknowledged_after: int
    """Writes acknowledged after the kill."""
    errors: Counter[str] = field(default_factory=Counter)
    """The errors the writers saw, by class name and code."""


def failover_drill(
    pair: ReplicatedPair | StandbyPair,
    connect: Any,
    *,
    writers: int = 4,
    before: int = 100,
    after: int = 50,
    promote_after: float = 0.0,
    timeout: float = 60.0,
    stop_primary: Callable[[], None] | None = None,
) -> FailoverDrill:
    """Writers insert unique ids through connections of ``connect()`` (autocommit on, a
    table ``failover_drill`` of their own) until ``before`` writes are acknowledged; then
    the primary is killed (``stop_primary``, by default ``pair.kill_primary``) and,
    ``promote_after`` seconds later (an orchestrator noticing),
    the replica promoted; the writers go on until each has ``after`` more acknowledged.
    Every write is booked in a :class:`WriteLedger`, checked against the promoted server
    at the end. ``pair``: a MariaDB :class:`ReplicatedPair` or a PostgreSQL
    :class:`StandbyPair`."""
    from ..errors import OutcomeUnknownError, TransactionLostError

    table = pair.table("failover_drill")
    with contextlib.closing(pair.primary.admin()) as admin, admin.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} ({pair.drill_table})")
    pair.wait_caught_up()
    ledger = WriteLedger()
    lock = threading.Lock()
    errors: Counter[str] = Counter()
    acknowledged = [0, 0]  # in all, and after the kill
    resumed: list[float] = []  # per writer: when its first write after the kill returned
    killed_at = [float("inf")]
    stop = threading.Event()
    failures: list[BaseException] = []

    def write(index: int) -> None:
        conn = connect()
        after_kill = 0
        try:
            while not stop.is_set():
                uid = ledger.new_id(f"d{index}")
                started = time.monotonic()
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"INSERT INTO {table} (uid) VALUES (%s)", (uid,))
                except OutcomeUnknownError:
                    ledger.outcome_unknown([uid])
                    _count(errors, lock, "OutcomeUnknownError")
                    continue
                except TransactionLostError:
                    ledger.rolled_back_ids([uid])
                    conn.rollback()
                    _count(errors, lock, "TransactionLostError")
                    continue
                except Exception as exc:
                    # The driver's own error (or NoSuitableHostError): resilient_dbapi
                    # promises the write was not applied; the check holds it to that.
                    ledger.rolled_back_ids([uid])
                    code = exc.args[0] if exc.args else "?"
                    _count(errors, lock, f"{type(exc).__name__} {code}")
                    time.sleep(0.01)
                    continue
                ledger.acknowledge([uid])
                with lock:
                    acknowledged[0] += 1
                    if started > killed_at[0]:
                        acknowledged[1] += 1
                        after_kill += 1
                        if after_kill == 1:
                            resumed.append(time.monotonic())
                if after_kill >= after:
                    return
        except BaseException as exc:
            failures.append(exc)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(writers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    while acknowledged[0] < before and not failures and time.monotonic() < deadline:
        time.sleep(0.005)
    (stop_primary or pair.kill_primary)()
    with lock:
        killed_at[0] = time.monotonic()
    if promote_after:
        time.sleep(promote_after)
    pair.promote()
    promoted_at = time.monotonic()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stop.set()
    for thread in threads:
        thread.join(5)
    if failures:
        raise failures[0]
    if len(resumed) < writers:
        raise TimeoutError(
            f"{writers - len(resumed)} of {writers} writers never wrote again within "
            f"{timeout} s of the kill; errors: {dict(errors)}"
        )
    with contextlib.closing(pair.replica.admin()) as admin, admin.cursor() as cur:
        cur.execute(f"SELECT uid FROM {table}")
        stored = [row[0] for row in cur.fetchall()]
    return FailoverDrill(
        check=ledger.check(stored),
        promotion=promoted_at - killed_at[0],
        first_write=min(resumed) - promoted_at,
        all_writers=max(resumed) - promoted_at,
        acknowledged_after=acknowledged[1],
        errors=errors,
    )


def _count(errors: Counter[str], lock: threading.Lock, key: str) -> None:
    with lock:
        errors[key] += 1
