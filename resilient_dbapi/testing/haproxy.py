"""HAProxy in front of two MariaDB servers: the "proxy in front" topology for tests.

``ProxiedPair()`` runs two :class:`~resilient_dbapi.testing.MariaDBServer` (independent,
both writable) and Debian's ``haproxy`` in TCP mode on one loopback port: the first
server takes every connection while its health check passes (``option mysql-check``
every 0.2 s, down after two failures), the second is the backup. When the first goes
down HAProxy ends every session on it and sends new ones to the backup: the client sees
one address whose server changed under it.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..events import Event, add_listener, remove_listener
from .ledger import LedgerCheck, WriteLedger, error_key
from .servers import AppUser, MariaDBServer, ServerUnavailable, free_port

__all__ = ["ProxiedPair", "ProxyDrill", "find_haproxy", "proxy_drill"]


def find_haproxy() -> str:
    """The path of ``haproxy``; ServerUnavailable if missing."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise ServerUnavailable(
            "haproxy was not found; install Debian's haproxy package (apt-get install haproxy)"
        )
    return found


class ProxiedPair(AppUser):
    """Two MariaDB servers behind one HAProxy port, with the database ``app`` and the user
    ``app`` on each. ``kill_primary()`` crashes the first; HAProxy moves to the second."""

    drill_table: str = "n BIGINT AUTO_INCREMENT PRIMARY KEY, uid VARCHAR(64) NOT NULL"

    def __init__(self) -> None:
        self.haproxy_bin = find_haproxy()
        self.port = 0  # chosen when HAProxy starts
        self.basedir = Path(tempfile.mkdtemp(prefix="rdbapi-haproxy-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.servers: list[MariaDBServer] = []

    def start(self) -> ProxiedPair:
        try:
            for _ in range(2):
                server = MariaDBServer()
                self.servers.append(server)
                server.start()
                with contextlib.closing(server.admin()) as conn, conn.cursor() as cur:
                    self.create_app(conn)
                    cur.execute("CREATE USER 'haproxy'@'%'")  # the health check's login
            self._start_haproxy()
        except BaseException:
            self.remove()
            raise
        return self

    def _start_haproxy(self, attempts: int = 5) -> None:
        # A free port can be taken by another process before HAProxy binds it; HAProxy then
        # exits (it binds without SO_REUSEPORT, which would let two proxies share the port
        # and each other's connections), and another port is tried.
        for attempt in range(attempts):
            self.port = free_port()
            config = self.basedir / "haproxy.cfg"
            config.write_text(self._config())
            log_path = self.basedir / "haproxy.log"
            with log_path.open("ab") as log:  # every attempt's
                self.process = subprocess.Popen(
                    [self.haproxy_bin, "-db", "-f", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            try:
                self._wait_ready()
                return
            except ServerUnavailable:
                if attempt + 1 == attempts or "cannot bind" not in log_path.read_text(
                    errors="replace"
                ):
                    raise

    def _config(self) -> str:
        a, b = (server.port for server in self.servers)
        return "\n".join(
            [
                "global",
                "    maxconn 2000",
                "    noreuseport",
                "defaults",
                "    mode tcp",
                "    timeout connect 1s",
                "    timeout client 1h",
                "    timeout server 1h",
                "listen mariadb",
                f"    bind 127.0.0.1:{self.port}",
                "    option mysql-check user haproxy",
                "    default-server inter 200ms fall 2 rise 2 on-marked-down shutdown-sessions",
                f"    server a 127.0.0.1:{a} check",
                f"    server b 127.0.0.1:{b} check backup",
                "",
            ]
        )

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.basedir / "haproxy.log").read_text(errors="replace")[-2000:]
                raise ServerUnavailable(f"haproxy exited with {self.process.returncode}: {log}")
            with contextlib.suppress(Exception):
                # bounded: whatever else listens on the port may never greet
                conn = self.connect(connect_timeout=2, read_timeout=2)
                conn.close()
                return
            time.sleep(0.05)
        raise ServerUnavailable(f"haproxy did not pass a connection within {timeout} s")

    def connect(self, **overrides: Any) -> Any:
        """A plain PyMySQL connection through the proxy, as the app user."""
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=self.port, **self.app_kwargs(**overrides))

    def remove(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for server in self.servers:
            server.stop(kill=True)
            server.remove()
        shutil.rmtree(self.basedir, ignore_errors=True)

    def __enter__(self) -> ProxiedPair:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    # -- using it -----------------------------------------------------------------------

    def kill_primary(self) -> None:
        """SIGKILL the first server; HAProxy notices within about 0.4 s."""
        self.servers[0].stop(kill=True)

    def revive_primary(self) -> None:
        """Start the first server again on its data (to count what it stored)."""
        self.servers[0].start()

    def uids(self, table: str) -> list[str]:
        """Every ``uid`` of ``table`` on both servers (the second only, once the first
        is dead)."""
        return [uid for found in self.uids_by_server(table) for uid in found]

    def uids_by_server(self, table: str) -> list[list[str]]:
        """:meth:`uids`, server by server (empty for a server that is down)."""
        found: list[list[str]] = []
        for server in self.servers:
            found.append([])
            if server.process is None:
                continue
            with contextlib.closing(server.admin()) as conn, conn.cursor() as cur:
                cur.execute(f"SELECT uid FROM {self.table(table)}")
                found[-1] += [row[0] for row in cur.fetchall()]
        return found


@dataclass
class ProxyDrill:
    """What :func:`proxy_drill` saw: the ledger's check over both servers, and how long
    after the kill every writer had a write acknowledged again (seconds)."""

    check: LedgerCheck
    every_writer: float
    errors: Counter[str] = field(default_factory=Counter)
    trail: dict[str, list[str]] = field(default_factory=dict)
    """For each id the check found wrong (doubled, lost, unexpected): the library's
    events while it was written, what the client heard, and how often each server
    stores it."""


def proxy_drill(
    pair: ProxiedPair,
    connect: Callable[[], Any],
    *,
    writers: int = 4,
    before: int = 100,
    after: int = 30,
    timeout: float = 30.0,
) -> ProxyDrill:
    """Writers insert unique ids through connections of ``connect()`` (to the proxy's one
    address); once ``before`` writes are acknowledged the first server is killed, and the
    writers go on until each has ``after`` more. The first server is then started again
    and every write checked against both. A write that raises the driver's own error
    counts as not applied (resilient_dbapi's promise), ``OutcomeUnknownError`` as
    perhaps applied."""
    table = pair.table("proxy_drill")
    # Ids no other drill issues, so that rows of another one (a mistake of the rig) show
    # as unexpected instead of passing for this drill's own.
    drill = secrets.token_hex(3)
    for server in pair.servers:
        with contextlib.closing(server.admin()) as admin, admin.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")  # a drill before it
            cur.execute(f"CREATE TABLE {table} ({pair.drill_table})")
    ledger = WriteLedger()
    lock = threading.Lock()
    errors: Counter[str] = Counter()
    acknowledged = [0]
    after_kill = [0] * writers
    resumed = [0.0] * writers
    killed_at = [float("inf")]
    stop = threading.Event()
    failures: list[BaseException] = []

    heard: dict[str, list[str]] = {}
    writing = threading.local()

    def listen(event: Event) -> None:
        uid = getattr(writing, "uid", None)
        if uid is not None:
            heard.setdefault(uid, []).append(repr(event))

    def write(index: int) -> None:
        conn = None
        try:
            conn = connect()
            while not stop.is_set() and after_kill[index] < after:
                started = time.monotonic()
                writing.uid = uid = ledger.new_id(f"{drill}p{index}")
                failed = ledger.insert(conn, table, uid)
                writing.uid = None
                heard.setdefault(uid, []).append(
                    "acknowledged" if failed is None else f"raised {error_key(failed)}"
                )
                if failed is not None:
                    with lock:
                        errors[error_key(failed)] += 1
                    time.sleep(0.01)
                    continue
                with lock:
                    acknowledged[0] += 1
                    if started > killed_at[0]:
                        after_kill[index] += 1
                        if after_kill[index] == 1:
                            resumed[index] = time.monotonic()
        except BaseException as exc:
            failures.append(exc)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(writers)]
    add_listener(listen)
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        while acknowledged[0] < before and not failures and time.monotonic() < deadline:
            time.sleep(0.005)
        pair.kill_primary()
        with lock:
            killed_at[0] = time.monotonic()
        for thread in threads:
            thread.join(max(0.0, deadline + timeout - time.monotonic()))
        stop.set()
        for thread in threads:
            thread.join(5)
    finally:
        remove_listener(listen)
    if failures:
        raise failures[0]
    if not all(resumed):
        raise TimeoutError(f"writers never wrote again after the kill: {dict(errors)}")
    pair.revive_primary()
    by_server = pair.uids_by_server("proxy_drill")
    check = ledger.check([uid for found in by_server for uid in found])
    wrong = set(check.duplicates) | check.lost_acknowledged | check.unexpected
    trail = {
        uid: [
            *heard.get(uid, ["never written"]),
            *(f"server {i} stores it {found.count(uid)}x" for i, found in enumerate(by_server)),
        ]
        for uid in sorted(wrong)
    }
    return ProxyDrill(
        check=check,
        every_writer=max(resumed) - killed_at[0],
        errors=errors,
        trail=trail,
    )
