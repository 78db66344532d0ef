"""The opt-in background probe of a creator's hosts (``probe=HostProbe(...)`` with
``hosts=``): one thread per ``connect()``/``creator()``, started by its first connection
and ended with its last, that opens and closes a connection to each host every
``interval`` and marks in the shared health view a host it cannot reach or that does not
answer within ``timeout``, so that idle connections leave it before sending.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from ._connector import ConnectorBase, Request, never_reached, timed_out
from .events import log
from .hosts import Host, HostMemory, HostProbe

if TYPE_CHECKING:
    from .adapters import Inspector

__all__ = ["Prober"]


class Prober:
    """Probes the hosts of one creator in a daemon thread while any of its connections is
    open (see :meth:`hold`). A probe is a connect (with the driver's connect timeout set
    to ``timeout``) and a close: nothing is sent, no session is kept between probes."""

    _making = threading.Lock()

    def __init__(self, probe: HostProbe, connector: ConnectorBase, memory: HostMemory) -> None:
        self.probe = probe
        self._connector = connector
        self._memory = memory
        self._lock = threading.Lock()
        self._holders = 0
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._timeout_argument: str | None = None
        self.probes = 0  # how many were made (for tests and curiosity)

    @classmethod
    def of(cls, request: Request) -> Prober | None:
        """The probe of ``request``'s creator (made by its first connection), or None when
        none was asked for."""
        memory = request.memory
        if request.probe is None or memory is None:
            return None
        with cls._making:  # the first connections of a pool may open at once
            if not isinstance(memory.prober, Prober):
                connector = ConnectorBase(
                    request.driver_connect,
                    request.args,
                    request.kwargs,
                    memory,
                    request.autocommit,
                    request.credentials,
                )
                memory.prober = cls(request.probe, connector, memory)
            return memory.prober

    def hold(self, owner: object, adapter: Inspector) -> weakref.finalize[Any, Any]:
        """``owner`` (a logical connection) is open: probe until it and every other holder
        let go. Returns the release, to call on close (the garbage collector calls it
        for a connection never closed)."""
        argument = adapter.connect_timeout_argument
        if argument is None:
            raise TypeError(
                f"probe=: {adapter.name} has no connect timeout argument to bound a probe "
                "with; probing works with PyMySQL, aiomysql, mysqlclient, mysql-connector "
                "and psycopg"
            )
        with self._lock:
            self._timeout_argument = argument
            self._holders += 1
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(
                    target=self._run, name="resilient_dbapi host probe", daemon=True
                )
                self._thread.start()
        return weakref.finalize(owner, self._release)

    def _release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                self._wake.set()  # the thread ends now, not after its sleep

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._holders == 0:
                    self._thread = None
                    return
            for host in self._memory.failover.hosts:
                self._probe_one(host)
            self._wake.wait(self.probe.interval)
            self._wake.clear()

    def _probe_one(self, host: Host) -> None:
        connector = self._connector
        began = time.monotonic()
        try:
            arguments = connector.arguments(host)
            if connector.credentials is not None:
                made = connector.credentials(connector.shown(arguments))
                if inspect.isawaitable(made):
                    made = asyncio.run(_awaited(made))
                arguments = connector.with_credentials(arguments, made)
            assert self._timeout_argument is not None
            # Whole seconds: mysqlclient takes no fraction, libpq counts in seconds.
            arguments[self._timeout_argument] = max(1, math.ceil(self.probe.timeout))
            raw = connector.driver_connect(*connector.args, **arguments)
            if inspect.isawaitable(raw):
                raw = asyncio.run(_opened_and_closed(raw))
            else:
                raw.close()
        except Exception as exc:
            self.probes += 1
            why = _why(exc, connector, time.monotonic() - began, self.probe.timeout)
            if why is not None:
                now = time.monotonic()
                self._memory.failed(host, now)
                self._memory.mark(host, why, began)
                log.warning("host %s passed over: %s (found by the background probe)", host, why)
            return
        self.probes += 1


def _why(exc: Exception, connector: ConnectorBase, took: float, timeout: float) -> str | None:
    """Why a failed probe marks its host, or None: never reached (refused, timed out),
    or silent (the connection made, the server's greeting never came within the
    timeout: a frozen server). A server that answered (a refused login, too many
    connections) is up: its sessions are not in doubt."""
    from . import adapters

    adapter = adapters.adapter_for_error(exc)
    code = adapter.error_code(exc) if adapter is not None else None
    if never_reached(exc, code):
        return "unreachable"
    if timed_out(exc) or took >= timeout:
        return "silent"
    return None


async def _awaited(value: Any) -> Any:
    return await value


async def _opened_and_closed(opening: Any) -> None:
    raw = await opening
    closing = raw.close()
    if inspect.isawaitable(closing):
        await closing
