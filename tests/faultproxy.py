"""A loopback TCP proxy that injects network faults between a client and the server.

It relays bytes both ways. ``cut_after(marker)`` makes it forward the next client chunk
containing ``marker`` to the server, drop the server's reply and close the client's side:
the command is executed, but the client never learns it was.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from resilient_dbapi.testing import free_port


class _Pair:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.drop_replies = False
        self.blackholed = False

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
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
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self.close_all()

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
