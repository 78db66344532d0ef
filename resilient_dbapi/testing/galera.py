"""A three-node MariaDB Galera Cluster on loopback, for cluster tests and drills.

``GaleraCluster()`` runs Debian's ``mariadbd`` with the ``galera-4`` provider three times,
each node on its own ports, the first bootstrapping the cluster and the others joining it
by a state snapshot (rsync). Failure detection is tuned for loopback (a node that stops
answering is dropped from the primary component after about 1.5 s, not the default 5 s).
``isolate()`` cuts a node off the others (it stays up, outside the primary component,
answering 1047), ``kill()`` crashes one, ``pause()`` freezes one (SIGSTOP), and
``rejoin()`` brings any of them back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .ledger import LedgerCheck, WriteLedger, error_key
from .servers import AppUser, MariaDBServer, ServerUnavailable, free_port

__all__ = [
    "FaultPhase",
    "GaleraCluster",
    "GaleraDrill",
    "GaleraNode",
    "find_galera",
    "galera_drill",
]

_PROVIDERS = ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/libgalera_smm.so")

# Loopback never loses a packet: a node silent for 1 s is suspected, dropped after 1.5 s
# (the defaults, 5 s and 15 s, are for real networks and would make each drill slow).
_EVS = (
    "evs.keepalive_period=PT0.2S",
    "evs.inactive_check_period=PT0.2S",
    "evs.suspect_timeout=PT1S",
    "evs.inactive_timeout=PT1.5S",
    "evs.install_timeout=PT1.5S",
    "evs.join_retrans_period=PT0.2S",
)


def find_galera() -> str:
    """The path of the Galera provider library; ServerUnavailable if missing."""
    for path in _PROVIDERS:
        if os.path.exists(path):
            return path
    raise ServerUnavailable(
        "the Galera provider (libgalera_smm.so) was not found; install Debian's galera-4 "
        "package (apt-get install galera-4 rsync)"
    )


class GaleraNode(MariaDBServer):
    """One node of a :class:`GaleraCluster`: a :class:`MariaDBServer` with the wsrep
    provider, ready once it is Synced. Only the first node's data directory is
    initialised; the others receive theirs from a donor when they join.

    Run as the ``mysql`` user when we are root: the rsync state transfer's daemon
    drops root for ``nobody``, which could not write the data directory."""

    run_as: ClassVar[str] = "mysql"

    def __init__(self, index: int, provider: str, bootstrap: bool) -> None:
        self.index = index
        self.provider = provider
        self.bootstrap = bootstrap
        self.group_port = free_port()
        self.ist_port = free_port()
        self.sst_port = free_port()
        self.cluster_address = ""  # set by the cluster once every node has its ports
        self.new_cluster = bootstrap  # the next start bootstraps a new primary component
        super().__init__(prefix=f"rdbapi-galera{index}-", startup_timeout=60.0)

    def _install(self) -> None:
        if self.bootstrap:
            super()._install()
        else:
            self.datadir.mkdir(exist_ok=True)  # filled by the donor

    def _spawn(self) -> subprocess.Popen[bytes]:
        options = ";".join(
            (
                f"gmcast.listen_addr=tcp://127.0.0.1:{self.group_port}",
                f"ist.recv_addr=127.0.0.1:{self.ist_port}",
                "gcache.size=64M",
                *_EVS,
            )
        )
        self.extra_args = (
            "--wsrep-on=ON",
            f"--wsrep-provider={self.provider}",
            f"--wsrep-cluster-address=gcomm://{self.cluster_address}",
            "--wsrep-cluster-name=rdbapi",
            f"--wsrep-node-name=node{self.index}",
            f"--wsrep-node-address=127.0.0.1:{self.group_port}",
            f"--wsrep-provider-options={options}",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.sst_port}",
            "--wsrep-sst-method=rsync",
            "--binlog-format=ROW",
            "--innodb-autoinc-lock-mode=2",
            "--innodb-log-file-size=16M",
            *(("--wsrep-new-cluster",) if self.new_cluster else ()),
        )
        self.new_cluster = False
        return super()._spawn()

    def _ready(self) -> bool:
        return self.state() == (True, 4)

    def state(self) -> tuple[bool, int] | None:
        """``(wsrep_ready, wsrep_local_state)`` (4: Synced), None if unreachable."""
        try:
            with contextlib.closing(self.admin(read_timeout=2)) as conn, conn.cursor() as cur:
                # A SHOW would wait for the cluster under a global wsrep_sync_wait with
                # bit 8, and fail where it is asked: on a node that is not ready.
                cur.execute("SET SESSION wsrep_sync_wait = 0")
                cur.execute(
                    "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state')"
                )
                status = dict(cur.fetchall())
        except Exception:
            return None
        return status.get("wsrep_ready") == "ON", int(status.get("wsrep_local_state", 0))

    def set_provider_option(self, option: str) -> None:
        with contextlib.closing(self.admin()) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL wsrep_provider_options = %s", (option,))


class GaleraCluster(AppUser):
    """Three :class:`GaleraNode` forming one cluster, with the database ``app`` and the
    user ``app`` (no SUPER) on every node.

    ``isolate(i)`` cuts node ``i`` off (``gmcast.isolate``): it stays up outside the
    primary component and answers 1047 to anything touching a table; ``kill(i)`` is a
    crash (SIGKILL), ``pause(i)`` a frozen process (SIGSTOP: it answers nothing);
    ``rejoin(i)`` undoes any of them and returns once the node is Synced again."""

    def __init__(self, size: int = 3) -> None:
        if size < 3:
            raise ValueError(f"GaleraCluster: size {size}; a cluster needs at least 3 nodes")
        provider = find_galera()
        self.nodes: list[GaleraNode] = []
        try:
            for index in range(size):
                self.nodes.append(GaleraNode(index, provider, bootstrap=index == 0))
        except BaseException:
            self.remove()
            raise
        address = ",".join(f"127.0.0.1:{node.group_port}" for node in self.nodes)
        for node in self.nodes:
            node.cluster_address = address
        self._isolated: set[int] = set()
        self._paused: set[int] = set()
        self._started = False
        self.restarts = 0
        """Nodes :meth:`rejoin` restarted because they did not come back by themselves."""

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> GaleraCluster:
        """Bootstrap the first node, join the others (at once), create ``app``."""
        if self._started:
            return self
        try:
            self.nodes[0].start()
            with ThreadPoolExecutor(max_workers=len(self.nodes) - 1) as pool:
                for joined in pool.map(lambda node: node.start(), self.nodes[1:]):
                    del joined
            with contextlib.closing(self.nodes[0].admin()) as conn:
                self.create_app(conn)
        except BaseException:
            self.remove()
            raise
        self._started = True
        return self

    def remove(self) -> None:
        """Kill every node and delete its data."""
        for index in list(self._paused):
            self._signal(index, signal.SIGCONT)
        for node in self.nodes:
            node.stop(kill=True)
            node.remove()

    def __enter__(self) -> GaleraCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    # -- using it -----------------------------------------------------------------------

    def hosts(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node, in order."""
        return [("127.0.0.1", node.port) for node in self.nodes]

    def admin(self, index: int, **overrides: Any) -> Any:
        """A root connection to node ``index`` (autocommit on)."""
        return self.nodes[index].admin(**overrides)

    def wait_size(self, size: int, *, on: int | None = None, timeout: float = 30.0) -> None:
        """Wait until a node (``on``, or the first one up and not cut off) sees a primary
        component of ``size`` nodes."""
        index = on if on is not None else self._reachable()
        deadline = time.monotonic() + timeout
        seen: Any = None
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(Exception),
                contextlib.closing(self.admin(index, read_timeout=2)) as conn,
                conn.cursor() as cur,
            ):
                cur.execute(
                    "SHOW GLOBAL STATUS WHERE Variable_name IN "
                    "('wsrep_cluster_size', 'wsrep_cluster_status')"
                )
                seen = dict(cur.fetchall())
                if (
                    seen.get("wsrep_cluster_status") == "Primary"
                    and int(seen.get("wsrep_cluster_size", 0)) == size
                ):
                    return
            time.sleep(0.05)
        raise TimeoutError(f"node {index} did not see a primary component of {size}: {seen}")

    def wait_whole(self, timeout: float = 60.0) -> None:
        """Wait until every node is back, Synced, and sees all of them (a node that
        rejoined may still be in a view change the others are finishing)."""
        for index in range(len(self.nodes)):
            self.rejoin(index, timeout)
        for index in range(len(self.nodes)):
            self.wait_size(len(self.nodes), on=index, timeout=timeout)
        for node in self.nodes:
            deadline = time.monotonic() + timeout
            while node.state() != (True, 4):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node {node.index} was not Synced within {timeout} s")
                time.sleep(0.05)

    def _reachable(self) -> int:
        for node in self.nodes:
            if node.index in self._isolated or node.index in self._paused:
                continue
            if node.process is not None:
                return node.index
        raise RuntimeError("no node is up")

    # -- faults -------------------------------------------------------------------------

    def isolate(self, index: int, timeout: float = 30.0) -> None:
        """Cut node ``index`` off the others; returns once the others formed a primary
        component without it and it knows it is outside (it refuses with 1047 then; in
        between, a write it replicates fails at commit with 1180)."""
        node = self.nodes[index]
        node.set_provider_option("gmcast.isolate=1")
        self._isolated.add(index)
        self.wait_size(len(self.nodes) - len(self._isolated) - len(self._paused))
        deadline = time.monotonic() + timeout
        while (state := node.state()) is None or state[0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {index} still says it is ready: {state}")
            time.sleep(0.02)

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (a crash); returns once it is dead."""
        self.nodes[index].stop(kill=True)

    def pause(self, index: int) -> None:
        """SIGSTOP node ``index``: its sockets stay open and nothing answers."""
        self._signal(index, signal.SIGSTOP)
        self._paused.add(index)

    def rejoin(
        self, index: int, timeout: float = 60.0, *, restart_after: float | None = None
    ) -> None:
        """Bring node ``index`` back (reconnected, resumed or restarted); returns once it
        is Synced.

        A node that is not Synced ``restart_after`` seconds later (default: a third of
        ``timeout``), or whose process ended meanwhile, is restarted: it joins again by a
        state transfer. Galera does not always take a node cut off back by itself (one
        left outside after ``gmcast.isolate`` went back to 0 once failed a CI run), and a
        drill measures the writers while the fault lasts, not how the node returns.
        ``restarts`` counts such restarts."""
        node = self.nodes[index]
        if index in self._paused:
            self._signal(index, signal.SIGCONT)
            self._paused.discard(index)
        if index in self._isolated:
            with contextlib.suppress(Exception):  # a node that left the group refuses it
                node.set_provider_option("gmcast.isolate=0")
            self._isolated.discard(index)
        start = time.monotonic()
        deadline = start + timeout
        restart_at = start + (timeout / 3 if restart_after is None else restart_after)
        while (state := node.state()) != (True, 4):
            now = time.monotonic()
            if node.process is None or node.process.poll() is not None or now > restart_at:
                if node.process is not None:
                    self.restarts += 1
                    node.stop()
                node.start()  # waits until Synced (or raises ServerUnavailable)
                restart_at = float("inf")  # once
                continue
            if now > deadline:
                raise TimeoutError(
                    f"node {index} was not Synced within {timeout} s (ready, state: "
                    f"{state}); its log ends: {self.log(index)[-1500:]}"
                )
            time.sleep(0.05)

    def _signal(self, index: int, signum: signal.Signals) -> None:
        process = self.nodes[index].process
        if process is not None and process.poll() is None:
            process.send_signal(signum)

    def log(self, index: int) -> str:
        """The end of node ``index``'s error log."""
        return Path(self.nodes[index].log_path).read_text(errors="replace")[-4000:]


FAULTS = ("isolate", "kill", "pause")
"""What :func:`galera_drill` does to the writers' node, in order: cut it off the others,
crash it (SIGKILL), freeze it (SIGSTOP)."""


@dataclass
class FaultPhase:
    """One fault of a :func:`galera_drill`: on which node, and what the writers saw."""

    fault: str
    node: int
    stall: float
    """The longest any writer went without an acknowledged write, from its last one
    before the fault to its first one after (seconds): the outage it saw."""
    failed: int
    """Writes that raised meanwhile (any error: the driver's, OutcomeUnknownError, ...)."""
    errors: Counter[str] = field(default_factory=Counter)
    """Those errors by class name and code."""


@dataclass
class GaleraDrill:
    """What :func:`galera_drill` saw: the ledger's check on every node, and each fault."""

    check: LedgerCheck
    phases: list[FaultPhase]
    same_on_every_node: bool
    reads: int
    failed_reads: int


def _busiest(cluster: GaleraCluster, user: str) -> int:
    """The node holding most of ``user``'s connections."""
    counts = []
    for node in cluster.nodes:
        with contextlib.closing(node.admin(read_timeout=2)) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (user,)
            )
            counts.append(int(cur.fetchone()[0]))
    return max(range(len(counts)), key=counts.__getitem__)


def galera_drill(
    cluster: GaleraCluster,
    connect: Callable[[], Any],
    *,
    writers: int = 3,
    writes: int = 20,
    faults: tuple[str, ...] = FAULTS,
    timeout: float = 40.0,
) -> GaleraDrill:
    """Writers (autocommit INSERTs of unique ids into ``app.galera_drill``) and a reader,
    each on a connection of ``connect()``, while each of ``faults`` strikes the node most
    of them are on; after each, once every writer wrote ``writes`` times more, the node is
    brought back. Every write is booked in a :class:`WriteLedger` and checked on every
    node at the end. A write that raises the driver's own error counts as not applied (the
    promise resilient_dbapi makes), ``OutcomeUnknownError`` as perhaps applied."""
    from ..errors import OutcomeUnknownError

    with contextlib.closing(cluster.admin(0)) as admin, admin.cursor() as cur:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {cluster.database}.galera_drill "
            "(uid VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB"
        )
        cur.execute(f"DELETE FROM {cluster.database}.galera_drill")
    ledger = WriteLedger()
    lock = threading.Lock()
    written = [0] * writers
    last_ack = [0.0] * writers
    stalls = [0.0] * writers  # the longest gap between two acknowledged writes, per writer
    errors: Counter[str] = Counter()
    stop = threading.Event()
    failures: list[BaseException] = []
    reads = [0, 0]
    table = f"{cluster.database}.galera_drill"

    def write(index: int) -> None:
        try:
            conn = connect()
        except BaseException as exc:
            failures.append(exc)
            return
        try:
            while not stop.is_set():
                failed = ledger.insert(conn, table, ledger.new_id(f"g{index}"))
                if failed is not None:
                    _tally(errors, lock, failed)
                    if not isinstance(failed, OutcomeUnknownError):
                        time.sleep(0.01)
                    continue
                now = time.monotonic()
                with lock:
                    written[index] += 1
                    if last_ack[index]:
                        stalls[index] = max(stalls[index], now - last_ack[index])
                    last_ack[index] = now
        except BaseException as exc:
            failures.append(exc)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def read() -> None:
        try:
            conn = connect()
        except BaseException as exc:
            failures.append(exc)
            return
        try:
            while not stop.is_set():
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"SELECT COUNT(*) FROM {table}")
                        cur.fetchall()
                    reads[0] += 1
                except Exception:
                    reads[1] += 1
                    time.sleep(0.01)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def progress() -> None:
        with lock:
            marks = list(written)
        deadline = time.monotonic() + timeout
        while any(w < m + writes for w, m in zip(written, marks, strict=True)):
            if failures:
                raise failures[0]
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"writers stuck at {written} (from {marks}) for {timeout} s: {dict(errors)}"
                )
            time.sleep(0.01)

    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(writers)]
    threads.append(threading.Thread(target=read, daemon=True))
    phases: list[FaultPhase] = []
    for thread in threads:
        thread.start()
    try:
        progress()
        for fault in faults:
            node = _busiest(cluster, cluster.user)
            with lock:
                before = errors.copy()
                stalls[:] = [0.0] * writers
            if fault == "isolate":
                cluster.isolate(node)
            elif fault == "kill":
                cluster.kill(node)
            elif fault == "pause":
                cluster.pause(node)
            else:
                raise ValueError(f"galera_drill: unknown fault {fault!r}; allowed: {FAULTS}")
            progress()
            with lock:
                seen = errors - before
                stall = max(stalls)
            phases.append(FaultPhase(fault, node, stall, sum(seen.values()), seen))
            cluster.rejoin(node)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    if failures:
        raise failures[0]
    cluster.wait_whole()
    stored = []
    for index in range(len(cluster.nodes)):
        with contextlib.closing(cluster.admin(index)) as admin, admin.cursor() as cur:
            cur.execute(f"SELECT uid FROM {table} ORDER BY uid")
            stored.append([row[0] for row in cur.fetchall()])
    return GaleraDrill(
        check=ledger.check(stored[0]),
        phases=phases,
        same_on_every_node=all(rows == stored[0] for rows in stored),
        reads=reads[0],
        failed_reads=reads[1],
    )


def _tally(errors: Counter[str], lock: threading.Lock, exc: Exception) -> None:
    with lock:
        errors[error_key(exc)] += 1
