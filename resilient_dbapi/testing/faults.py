"""Network and server faults: ``FaultProxy`` relays a loopback TCP connection and injects
network faults into it; ``kill_connection`` kills a MariaDB session and waits until it
is gone; ``ServerFaults`` does to the sessions of a database what a server does to them
on its own (kills them, times them out when idle, restarts).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["FaultProxy", "ServerFaults", "kill_connection"]


class _Pair:
    """One relayed connection: the client's socket and ours to the server."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.drop_replies = False
        self.blackholed = False
        # Set by cut_reply(): how many bytes of the reply to pass on before cutting.
        self.reply_budget: int | None = None

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
    keeping their sockets open (a half-open connection); ``cut_reply(marker, keep)`` cuts
    once the server's reply has begun, after passing ``keep`` bytes of it on.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self._reply_cut: tuple[bytes, int] | None = None
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, marker: bytes) -> None:
        """Let the next client chunk containing ``marker`` reach the server, then cut."""
        self._marker = marker

    def cut_reply(self, marker: bytes, keep: int = 0) -> None:
        """Let the next client chunk containing ``marker`` reach the server; when the
        server's reply to it begins (so the command has run), pass its first ``keep``
        bytes on and cut both sides: ``keep=0`` loses the whole reply, a few bytes tear
        it. No waiting: the reply itself says when the command ran. ``keep`` must be
        smaller than the reply (an OK packet is 11 bytes), or the cut falls later."""
        if keep < 0:
            raise ValueError(f"keep must be at least 0, not {keep}")
        self._reply_cut = (marker, keep)

    def disarm(self) -> None:
        """Forget a ``cut_after()`` or ``cut_reply()`` whose marker was not sent."""
        self._marker = None
        self._reply_cut = None

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

    def refuse_new(self) -> None:
        """Refuse new connections (the port closes), leaving the open ones as they are:
        with :meth:`blackhole`, a host gone from the network whose open connections
        never hear of it."""
        self._closed = True
        with contextlib.suppress(OSError):
            # Closing alone would leave the accepting thread blocked (Linux): shut down first.
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()

    def close(self) -> None:
        """Stop accepting and drop every relayed connection."""
        self.refuse_new()
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
                reply_cut = self._reply_cut
                if reply_cut is not None and reply_cut[0] in data:
                    self._reply_cut = None
                    pair.reply_budget = reply_cut[1]  # before the reply can come
                    pair.upstream.sendall(data)
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
                budget = pair.reply_budget
                if budget is not None:
                    if len(data) > budget:
                        if budget:
                            pair.client.sendall(data[:budget])
                        self.cuts += 1
                        break
                    pair.reply_budget = budget - len(data)
                if not pair.drop_replies and not pair.blackholed:
                    pair.client.sendall(data)
        except OSError:
            pass
        pair.close()


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


# Sessions a fault never touches: the server's own threads.
_SYSTEM_USERS = ("system user", "event_scheduler")


class ServerFaults:
    """What a MariaDB server does to its clients' sessions, done on purpose, through
    ``server.admin()`` connections (a :class:`~resilient_dbapi.testing.MariaDBServer` or
    an :class:`~resilient_dbapi.testing.ExistingServer`).

    ``database`` and ``user`` narrow every fault to the sessions of that database (their
    current one) or user: those the code under test holds, not the test's own."""

    def __init__(self, server: Any, *, database: str | None = None, user: str | None = None):
        self.server = server
        self.database = database
        self.user = user

    def sessions(self, *, idle_for: float | None = None) -> list[int]:
        """The ids of the client sessions the faults would touch (``idle_for``: only
        those idle, between statements, for at least that many seconds)."""
        sql = (
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
            "AND USER NOT IN %s AND COMMAND NOT IN ('Daemon', 'Binlog Dump')"
        )
        args: list[Any] = [_SYSTEM_USERS]
        if self.database is not None:
            sql += " AND DB = %s"
            args.append(self.database)
        if self.user is not None:
            sql += " AND USER = %s"
            args.append(self.user)
        if idle_for is not None:
            sql += " AND COMMAND = 'Sleep' AND TIME_MS >= %s"
            args.append(idle_for * 1000)
        admin = self.server.admin()
        try:
            with admin.cursor() as cur:
                cur.execute(sql, args)
                return [int(row[0]) for row in cur.fetchall()]
        finally:
            admin.close()

    def kill_connections(self, *, wait: float = 10.0) -> int:
        """``KILL CONNECTION`` every session the faults touch (a DBA's kill, a failover
        that drops every client); wait until the server dropped them. Returns how many."""
        ids = self.sessions()
        self._kill(ids, wait)
        return len(ids)

    def time_out_idle(self, idle_for: float = 0.0, *, wait: float = 10.0) -> int:
        """End the sessions idle for at least ``idle_for`` seconds, as the server's
        ``wait_timeout`` would (the server closes the socket; the client learns at its
        next use). Returns how many."""
        ids = self.sessions(idle_for=idle_for)
        self._kill(ids, wait)
        return len(ids)

    @contextlib.contextmanager
    def wait_timeout(self, seconds: int) -> Iterator[None]:
        """Within the block, sessions that connect idle out after ``seconds``
        (``SET GLOBAL wait_timeout``; the server's own value comes back afterwards).
        A session reads the value when it connects: connect inside the block."""
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
            raise ValueError(f"wait_timeout is a whole number of seconds >= 1, not {seconds!r}")
        admin = self.server.admin()
        try:
            with admin.cursor() as cur:
                cur.execute("SELECT @@GLOBAL.wait_timeout")
                (before,) = cur.fetchone()
                cur.execute("SET GLOBAL wait_timeout = %s", (seconds,))
            try:
                yield
            finally:
                with admin.cursor() as cur:
                    cur.execute("SET GLOBAL wait_timeout = %s", (int(before),))
        finally:
            admin.close()

    def restart(self, *, down_for: float = 0.0, kill: bool = False) -> None:
        """Restart the server (``kill``: as a crash, SIGKILL), down for ``down_for``
        seconds in between: every session ends. A server we did not start refuses."""
        self.server.restart(down_for=down_for, kill=kill)

    def _kill(self, ids: list[int], wait: float) -> None:
        if not ids:
            return
        admin = self.server.admin()
        try:
            for thread_id in ids:
                kill_connection(admin, thread_id, wait=wait)
        finally:
            admin.close()
