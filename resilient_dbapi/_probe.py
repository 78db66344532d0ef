"""The opt-in background probe of a creator's hosts (``probe=HostProbe(...)`` with
``hosts=``): one thread per ``connect()``/``creator()``, started by its first connection
and ended with its last, that opens and closes a connection to each host every
``interval`` and marks in the shared health view a host it cannot reach or that does not
answer within ``timeout``, so that idle connections leave it before sending.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from ._connector import ConnectorBase, Request, never_reached, timed_out
from .hosts import Host, HostMemory, HostProbe

log = logging.getLogger("resilient_dbapi.probe")

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
        self._bound: dict[str, Any] = {}  # the adapter's arguments bounding a probe
        self._misses: dict[Host, int] = {}  # failed probes in a row, by host
        self.probes = 0  # how many were made (for tests and curiosity)
        _probers.add(self)

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
        arguments = adapter.probe_arguments(self.probe.timeout)
        if arguments is None:
            raise TypeError(
                f"probe=: {adapter.name} has no connect timeout argument to bound a probe "
                "with; probing works with PyMySQL, aiomysql, mysqlclient, mysql-connector "
                "and psycopg"
            )
        with self._lock:
            self._bound = arguments
            self._holders += 1
            thread = self._thread
            if thread is None or not thread.is_alive():
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
        me = threading.current_thread()
        try:
            while True:
                with self._lock:
                    if self._holders <= 0:
                        self._thread = None  # decided under the lock a hold() takes
                        return
                for host in self._memory.failover.hosts:
                    try:
                        self._probe_one(host)
                    except Exception:  # a probe's own failure must not end probing
                        log.warning("background probe of %s failed", host, exc_info=True)
                self._wake.wait(self.probe.interval)
                self._wake.clear()
        finally:
            with self._lock:
                if self._thread is me:
                    self._thread = None  # a later hold() starts another, whatever ended this

    def _probe_one(self, host: Host) -> None:
        connector = self._connector
        try:
            arguments = connector.arguments(host)
            if connector.credentials is not None:
                made = connector.credentials(connector.shown(arguments))
                if inspect.isawaitable(made):
                    made = _run_bounded(_awaited(made), self.probe.timeout + 1)
                arguments = connector.with_credentials(arguments, made)
        except Exception:
            # Not the host's doing (a token service down, say): nothing is marked.
            log.warning("background probe of %s: its credentials failed", host, exc_info=True)
            return
        arguments.update(self._bound)
        began = time.monotonic()
        try:
            raw = connector.driver_connect(*connector.args, **arguments)
            if inspect.isawaitable(raw):
                # The asyncio drivers bound no greeting: the deadline is ours.
                _run_bounded(_opened_and_closed(raw), self.probe.timeout + 1)
            else:
                raw.close()
        except Exception as exc:
            self.probes += 1
            why = _why(exc)
            if why is None:
                self._misses.pop(host, None)
                log.debug("background probe of %s failed, marking nothing: %r", host, exc)
                return
            misses = self._misses.get(host, 0) + 1
            self._misses[host] = misses
            if misses < MISSES:
                return  # one lost SYN or one slow greeting is not a dead host
            self._memory.found_bad(host, why, time.monotonic(), began)
            log.warning("host %s passed over: %s (found by the background probe)", host, why)
            return
        self.probes += 1
        self._misses.pop(host, None)


MISSES = 2
"""Probes in a row that must fail before a host is marked."""


def _why(exc: Exception) -> str | None:
    """Why a failed probe counts against its host, or None: never reached (refused,
    timed out), or silent (the connection made, the greeting never came in time: a
    frozen server). Only a driver's error, or our own deadline, counts; a server that
    answered (a refused login, too many connections) is up."""
    from . import adapters

    if isinstance(exc, TimeoutError) and adapters.adapter_for_error(exc) is None:
        return "silent"  # the deadline of an asyncio driver's probe
    adapter = adapters.adapter_for_error(exc)
    if adapter is None:
        return None
    code = adapter.error_code(exc)
    if never_reached(exc, code):
        return "unreachable"
    return "silent" if timed_out(exc) else None


def _run_bounded(coroutine: Any, seconds: float) -> Any:
    """Run ``coroutine`` to its end in a private event loop, at most ``seconds``."""
    return asyncio.run(asyncio.wait_for(coroutine, seconds))


def _forget_after_fork() -> None:
    # A child process inherits no thread and perhaps a held lock: start afresh.
    for prober in list(_probers):
        prober._lock = threading.Lock()
        prober._thread = None
        prober._wake = threading.Event()
        prober._misses = {}
        prober._memory.reset_lock()
    Prober._making = threading.Lock()


_probers: weakref.WeakSet[Prober] = weakref.WeakSet()
os.register_at_fork(after_in_child=_forget_after_fork)


async def _awaited(value: Any) -> Any:
    return await value


async def _opened_and_closed(opening: Any) -> None:
    raw = await opening
    closing = raw.close()
    if inspect.isawaitable(closing):
        await closing
