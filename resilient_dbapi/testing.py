"""Throwaway local database servers, for the test suite and the benchmarks.

``MariaDBServer()`` initialises a temporary data directory and runs Debian's
``mariadbd`` on a free loopback port; it starts in about a second and is removed on
``remove()``; ``ReplicatedPair()`` runs two as a primary and its replica, for failover
tests. ``PostgresServer()`` does the same with Debian's PostgreSQL (``initdb`` and
``postgres``, run as the ``postgres`` user when we are root). ``FaultProxy`` relays a
loopback TCP connection and injects network faults into it. Nothing here is needed to use
resilient_dbapi itself.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FailoverDrill",
    "FaultProxy",
    "LedgerCheck",
    "MariaDBServer",
    "PostgresServer",
    "ReplicatedPair",
    "ServerUnavailable",
    "WriteLedger",
    "failover_drill",
    "find_mariadbd",
    "find_postgres",
    "free_port",
    "kill_connection",
]


class ServerUnavailable(RuntimeError):
    """No such server can be started here; the message says what is missing."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def find_mariadbd() -> tuple[str, str]:
    """Paths of ``mariadbd`` and ``mariadb-install-db``; ServerUnavailable if missing."""
    server = _which("mariadbd") or _which("mysqld")
    install = _which("mariadb-install-db") or _which("mysql_install_db")
    if not server or not install:
        raise ServerUnavailable(
            "mariadbd and mariadb-install-db were not found; install Debian's "
            "mariadb-server package (apt-get install mariadb-server)"
        )
    return server, install


class MariaDBServer:
    """One throwaway ``mariadbd`` on 127.0.0.1 with a temporary data directory."""

    def __init__(self, *, extra_args: tuple[str, ...] = (), startup_timeout: float = 30.0):
        self.server_bin, self.install_bin = find_mariadbd()
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.basedir = Path(tempfile.mkdtemp(prefix="rdbapi-mariadb-"))
        self.datadir = self.basedir / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self._user_args = ["--user=root"] if os.geteuid() == 0 else []
        self._install()

    # -- life cycle -------------------------------------------------------------------

    def _install(self) -> None:
        result = subprocess.run(
            [
                self.install_bin,
                "--no-defaults",
                f"--datadir={self.datadir}",
                # A starting mariadbd deletes every #sql* file in its tmpdir, including
                # the temporary tables of a bootstrap running meanwhile: keep them apart.
                f"--tmpdir={self.basedir}",
                *self._user_args,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise ServerUnavailable(
                f"mariadb-install-db failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace')[-2000:]}"
            )

    def start(self) -> MariaDBServer:
        if self.process is not None and self.process.poll() is None:
            return self
        log = self.basedir / "error.log"
        self.process = subprocess.Popen(
            [
                self.server_bin,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.basedir / 'sock'}",
                f"--pid-file={self.basedir / 'pid'}",
                f"--tmpdir={self.basedir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                *self._user_args,
                "--skip-name-resolve",
                f"--log-error={log}",
                "--innodb-buffer-pool-size=32M",
                "--max-connections=500",
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise ServerUnavailable(f"mariadbd exited with {self.process.returncode}: {tail}")
            try:
                self.admin().close()
                return self
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerUnavailable(
                        f"mariadbd did not accept connections within {self.startup_timeout} s"
                    ) from None
                time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM: a clean shutdown; ``kill``: SIGKILL, a crash)."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.process = None

    def restart(self, *, down_for: float = 0.0, kill: bool = False) -> None:
        self.stop(kill=kill)
        if down_for:
            time.sleep(down_for)
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.basedir, ignore_errors=True)

    def __enter__(self) -> MariaDBServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    # -- using it -----------------------------------------------------------------------

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect``."""
        return {"host": "127.0.0.1", "port": self.port, "user": "root", "password": "", **overrides}

    def admin(self, **overrides: Any) -> Any:
        """A plain PyMySQL connection with autocommit on, for setting up and killing."""
        import pymysql

        return pymysql.connect(
            **self.connect_kwargs(autocommit=True, connect_timeout=5, **overrides)
        )


# -- MariaDB replication ------------------------------------------------------------------


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


class ReplicatedPair:
    """A MariaDB primary and a replica following it (GTID, semi-sync), for failover tests.

    Two :class:`MariaDBServer` on loopback: the replica is read-only and replicates from
    the primary as root, with strict GTID mode; with ``semi_sync`` a commit on the primary
    is acknowledged only once the replica has received it (AFTER_SYNC), falling back to
    asynchronous after 2 s without a reply. ``start()`` creates the database ``app`` and
    the user ``app`` on the primary, which replicate; the user lacks SUPER and READ ONLY
    ADMIN, so ``read_only`` binds it. ``kill_primary()`` then ``promote()`` is a failover.
    """

    database: str = "app"
    user: str = "app"
    password: str = "app-pw"
    primary: MariaDBServer
    replica: MariaDBServer

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
            with contextlib.closing(self.primary.admin()) as conn, conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{self.database}`")
                password = conn.escape(self.password)
                cur.execute(f"CREATE USER '{self.user}'@'%' IDENTIFIED BY {password}")
                cur.execute(f"GRANT ALL ON `{self.database}`.* TO '{self.user}'@'%'")
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

    def app_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """The app user's ``pymysql.connect`` arguments, without host and port."""
        return {
            "user": self.user,
            "password": self.password,
            "database": self.database,
            **overrides,
        }

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
    pair: ReplicatedPair,
    connect: Any,
    *,
    writers: int = 4,
    before: int = 100,
    after: int = 50,
    promote_after: float = 0.0,
    timeout: float = 60.0,
) -> FailoverDrill:
    """Writers insert unique ids through connections of ``connect()`` (autocommit on, a
    table ``failover_drill`` of their own) until ``before`` writes are acknowledged; then
    the primary is killed and, ``promote_after`` seconds later (an orchestrator noticing),
    the replica promoted; the writers go on until each has ``after`` more acknowledged.
    Every write is booked in a :class:`WriteLedger`, checked against the promoted server
    at the end."""
    from .errors import OutcomeUnknownError, TransactionLostError

    with contextlib.closing(pair.primary.admin()) as admin, admin.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {pair.database}.failover_drill (n BIGINT AUTO_INCREMENT "
            "PRIMARY KEY, uid VARCHAR(64) NOT NULL) ENGINE=InnoDB"
        )
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
                        cur.execute(
                            f"INSERT INTO {pair.database}.failover_drill (uid) VALUES (%s)", (uid,)
                        )
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
    pair.kill_primary()
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
        cur.execute(f"SELECT uid FROM {pair.database}.failover_drill")
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


# -- PostgreSQL ---------------------------------------------------------------------------


def _pg_version_key(bindir: str) -> tuple[int, ...]:
    name = Path(bindir).parent.name  # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in name.split(".") if part.isdigit()) or (0,)


def find_postgres() -> tuple[str, str]:
    """Paths of ``postgres`` and ``initdb``; ServerUnavailable if missing.

    Looks in ``$RDBAPI_PG_BINDIR`` if set, then on ``PATH``, then in Debian's
    ``/usr/lib/postgresql/<version>/bin`` (newest version first).
    """
    candidates: list[str] = []
    if os.environ.get("RDBAPI_PG_BINDIR"):
        candidates.append(os.environ["RDBAPI_PG_BINDIR"])
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_pg_version_key, reverse=True)
    for bindir in candidates:
        server, initdb = Path(bindir) / "postgres", Path(bindir) / "initdb"
        if os.access(server, os.X_OK) and os.access(initdb, os.X_OK):
            return str(server), str(initdb)
    raise ServerUnavailable(
        "PostgreSQL's postgres and initdb were not found (looked on PATH, in "
        "/usr/lib/postgresql/*/bin and $RDBAPI_PG_BINDIR); install Debian's "
        "postgresql package (apt-get install postgresql)"
    )


class PostgresServer:
    """One throwaway ``postgres`` on 127.0.0.1 with a temporary data directory.

    Trust authentication for local and loopback connections; the superuser is ``postgres``
    and the database ``postgres``. The unix socket lives in the temporary directory. Tuned
    to start fast and to be thrown away: fsync off, small shared buffers.

    When we are root, ``initdb`` and ``postgres`` run as the ``postgres`` user (they refuse
    to run as root) and the temporary directory is handed to that user.
    """

    user = "postgres"
    dbname = "postgres"

    def __init__(
        self,
        *,
        extra_args: tuple[str, ...] = (),
        settings: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
        max_connections: int = 300,
    ):
        """``settings``: extra ``-c name=value`` server settings (``extra_args``: raw args)."""
        self.server_bin, self.initdb_bin = find_postgres()
        self.extra_args = extra_args
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        self.max_connections = max_connections
        self._run_as: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable(
                    "running as root, and there is no postgres user to run PostgreSQL as "
                    "(Debian's postgresql package creates it)"
                ) from None
            self._run_as = "postgres"
        self.port = free_port()
        self.basedir = Path(tempfile.mkdtemp(prefix="rdbapi-postgres-"))
        self.datadir = self.basedir / "data"
        self.socket_dir = self.basedir
        self.log_path = self.basedir / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        if self._run_as is not None:
            shutil.chown(self.basedir, user=self._run_as, group=self._run_as)
        try:
            self._initdb()
        except BaseException:
            shutil.rmtree(self.basedir, ignore_errors=True)
            raise

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments that drop to the postgres user when we are root."""
        if self._run_as is None:
            return {}
        entry = pwd.getpwnam(self._run_as)
        env = {**os.environ, "HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "env": env}

    # -- life cycle -------------------------------------------------------------------

    def _initdb(self) -> None:
        try:
            result = subprocess.run(
                [
                    self.initdb_bin,
                    f"--pgdata={self.datadir}",
                    f"--username={self.user}",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                cwd=self.basedir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
                timeout=120,
                **self._as_user(),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServerUnavailable(f"initdb could not run: {exc}") from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise ServerUnavailable(f"initdb failed ({result.returncode}): {output[-2000:]}")

    def _server_args(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": str(self.max_connections),
            "shared_buffers": "16MB",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "checkpoint_timeout": "1h",
            "max_wal_size": "1GB",
            "autovacuum": "off",
            "dynamic_shared_memory_type": "mmap",
            "logging_collector": "off",
            "log_min_messages": "warning",
            **self.settings,
        }
        args = [self.server_bin, "-D", str(self.datadir)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        return [*args, *self.extra_args]

    def _ready(self) -> bool:
        """The postmaster says it accepts connections (what ``pg_ctl start -w`` checks)."""
        try:
            lines = (self.datadir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        # Line 8 is the postmaster status ("ready", "starting", "stopping", "standby").
        return (
            len(lines) >= 8 and lines[0].strip() == str(self._pid()) and lines[7].strip() == "ready"
        )

    def _pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def start(self) -> PostgresServer:
        if self.process is not None and self.process.poll() is None:
            return self
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self._server_args(),
                cwd=self.basedir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                **self._as_user(),
            )
        deadline = time.monotonic() + self.startup_timeout
        while not self._ready():
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise ServerUnavailable(f"postgres exited with {code}: {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop(kill=True)
                raise ServerUnavailable(
                    f"postgres did not accept connections within {self.startup_timeout} s: "
                    f"{self._log_tail()}"
                )
            time.sleep(0.01)
        return self

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server.

        By default a fast shutdown (SIGINT, ``pg_ctl stop -m fast``): every backend is
        terminated with 57P01 and the server checkpoints. ``kill``: an immediate shutdown
        (SIGQUIT, ``pg_ctl stop -m immediate``), like a crash: backends quit at once and
        the next start runs crash recovery.
        """
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT if kill else signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.process = None

    def restart(self, *, down_for: float = 0.0, kill: bool = False) -> None:
        self.stop(kill=kill)
        if down_for:
            time.sleep(down_for)
        self.start()

    def remove(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.basedir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    # -- using it -----------------------------------------------------------------------

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (TCP on 127.0.0.1)."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            **overrides,
        }

    def admin(self, **overrides: Any) -> Any:
        """A plain psycopg connection with autocommit on, for setting up and killing."""
        import psycopg

        kwargs = self.connect_kwargs(**overrides)
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(**kwargs)


# -- network faults -----------------------------------------------------------------------


class _Pair:
    """One relayed connection: the client's socket and ours to the server."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.drop_replies = False
        self.blackholed = False

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            # shutdown() first: it wakes a relay thread blocked in recv() on this socket.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class FaultProxy:
    """A loopback TCP proxy that injects network faults between a client and a server.

    Connect to ``127.0.0.1:<port>`` instead of the server; bytes are relayed both ways by
    daemon threads. ``cut_after(marker)`` forwards the next client chunk containing
    ``marker``, drops the server's reply and closes the client's side (the command runs,
    the client never learns it did); ``blackhole()`` silences the open connections while
    keeping their sockets open (a half-open connection).
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, marker: bytes) -> None:
        """Let the next client chunk containing ``marker`` reach the server, then cut."""
        self._marker = marker

    def blackhole(self) -> None:
        """Silently drop all traffic of the connections open now, keeping their sockets
        open: a half-open connection, as after a NAT forgot it. New connections work."""
        with self._lock:
            for pair in self._pairs:
                pair.blackholed = True

    def close_all(self) -> None:
        """Drop every relayed connection (both sides)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()

    def close(self) -> None:
        """Stop accepting and drop every relayed connection."""
        self._closed = True
        with contextlib.suppress(OSError):
            # Closing alone would leave the accepting thread blocked (Linux): shut down first.
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        self.close_all()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._client_to_server, args=(pair,), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(pair,), daemon=True).start()

    def _client_to_server(self, pair: _Pair) -> None:
        try:
            while data := pair.client.recv(65536):
                if pair.blackholed:
                    continue
                marker = self._marker
                if marker is not None and marker in data:
                    self._marker = None
                    pair.drop_replies = True
                    pair.upstream.sendall(data)
                    time.sleep(0.3)  # the server executes the command meanwhile
                    self.cuts += 1
                    pair.close()
                    return
                pair.upstream.sendall(data)
        except OSError:
            pass
        pair.close()

    def _server_to_client(self, pair: _Pair) -> None:
        try:
            while data := pair.upstream.recv(65536):
                if not pair.drop_replies and not pair.blackholed:
                    pair.client.sendall(data)
        except OSError:
            pass
        pair.close()


# -- faults ---------------------------------------------------------------------------------


def kill_connection(admin: Any, thread_id: int, *, wait: float = 10.0) -> None:
    """``KILL CONNECTION thread_id`` through ``admin`` (a PyMySQL connection with autocommit
    on), then wait up to ``wait`` seconds until the server has dropped the session."""
    import pymysql

    with admin.cursor() as cur:
        try:
            cur.execute(f"KILL CONNECTION {int(thread_id)}")
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != 1094:  # unknown thread: gone already
                raise
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (thread_id,)
            )
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.005)


# -- the invariant checker ------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerCheck:
    """What the table holds against what the client heard (see :class:`WriteLedger`)."""

    stored: int
    duplicates: dict[str, int] = field(default_factory=dict)
    """Ids stored more than once: a write applied twice."""
    lost_acknowledged: frozenset[str] = frozenset()
    """Ids the client saw acknowledged that the table lacks: a lost write."""
    unexpected: frozenset[str] = frozenset()
    """Ids stored that were never acknowledged nor reported of unknown outcome (a rolled
    back transaction that committed after all, or a write nobody reported)."""
    unknown_applied: int = 0
    """Ids reported of unknown outcome that were applied (allowed: once at most)."""

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.lost_acknowledged or self.unexpected)


class WriteLedger:
    """The client's side of every write, by unique id: acknowledged, of unknown outcome,
    or rolled back. Afterwards the table must hold exactly the acknowledged ids plus any
    subset of the unknown ones, each once, and nothing else. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self.acknowledged: set[str] = set()
        self.unknown: set[str] = set()
        self.rolled_back: set[str] = set()

    def new_id(self, prefix: str = "w") -> str:
        with self._lock:
            self._next += 1
            return f"{prefix}-{self._next}"

    def acknowledge(self, ids: Iterable[str]) -> None:
        with self._lock:
            self.acknowledged.update(ids)

    def outcome_unknown(self, ids: Iterable[str]) -> None:
        with self._lock:
            self.unknown.update(ids)

    def rolled_back_ids(self, ids: Iterable[str]) -> None:
        with self._lock:
            self.rolled_back.update(ids)

    def check(self, stored: Iterable[str]) -> LedgerCheck:
        """Compare ``stored`` (every id in the table, repeats included) with the ledger."""
        counts = Counter(stored)
        present = set(counts)
        with self._lock:
            acknowledged, unknown = set(self.acknowledged), set(self.unknown)
        return LedgerCheck(
            stored=sum(counts.values()),
            duplicates={uid: n for uid, n in counts.items() if n > 1},
            lost_acknowledged=frozenset(acknowledged - present),
            unexpected=frozenset(present - acknowledged - unknown),
            unknown_applied=len(unknown & present),
        )
