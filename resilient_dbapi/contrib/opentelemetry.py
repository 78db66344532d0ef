"""OpenTelemetry for resilient connections (``pip install resilient_dbapi[opentelemetry]``).

``ResilientDbapiInstrumentor().instrument()`` (or ``opentelemetry-instrument``, which
finds it by its entry point) traces every connection opened from then on:

- one ``CLIENT`` span per logical operation (``execute``, ``executemany``,
  ``callproc``, ``begin``, ``commit``, ``rollback``), around all of it: the checks, a reconnect,
  a statement sent again. Attributes follow the database conventions:
  ``db.system.name``, ``db.operation.name``, ``server.address`` and ``server.port`` of
  the last server contacted, and on failure ``db.response.status_code`` and
  ``error.type``. ``db.query.text`` only with ``capture_query_text=True`` (never the
  parameters).
- what the connection did on the way as span events: ``resilient_dbapi.reconnected``
  (reason, error, attempts), ``resilient_dbapi.retrying`` (a statement sent again, a
  connect retried), ``resilient_dbapi.host_passed_over`` (a failover),
  ``resilient_dbapi.transaction_lost``, ``resilient_dbapi.outcome_unknown``,
  ``resilient_dbapi.session_lost``, ``resilient_dbapi.pinged``.
- metrics under the standard names: ``db.client.operation.duration`` (s),
  ``db.client.connection.count`` (``idle`` or ``used``: in an operation or a
  transaction) and ``db.client.connection.create_time`` (s, reconnects included) for the
  connections of each ``connect()`` or ``creator()`` (``db.client.connection.pool.name``);
  and the library's own ``resilient_dbapi.connection.replacements`` and
  ``resilient_dbapi.work_lost``.

Under OpenTelemetry's own DB-API instrumentation of the driver (``PyMySQLInstrumentor``
...), the driver's spans and metrics are suppressed inside ours (one span per logical
operation, not one per attempt); where another instrumentation's database span is
current around ours (a DB-API integration wrapping ``resilient_dbapi.connect``), that span
gets our events and ours is not made. ``suppress_instrumentation()`` is honoured.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable
from dataclasses import fields
from types import TracebackType
from typing import Any

from opentelemetry import context, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.metrics import CallbackOptions, Meter, Observation, get_meter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from .. import _telemetry
from ..events import (
    Connected,
    Event,
    OutcomeUnknown,
    Reconnected,
    SessionLost,
    TransactionLost,
)

__all__ = ["ResilientDbapiInstrumentor"]

_SCOPE = "resilient_dbapi"
_OPERATION = context.create_key("resilient_dbapi.operation")
# The conventions' advice for db.client.operation.duration.
_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
_perf = time.perf_counter
log = logging.getLogger("resilient_dbapi.telemetry")
# How an operation is recorded: not at all (suppressed), as our own span, or as events
# on another instrumentation's database span.
_QUIET, _OWN, _ANNOTATE = object(), object(), object()
_UNKNOWN = object()
# The first keyword of a statement, past comments and an opening parenthesis.
_FIRST_WORD = re.compile(r"(?:\s+|/\*.*?\*/|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|\()*([A-Za-z]+)", re.S)
_LOST_WORK = (TransactionLost, OutcomeUnknown, SessionLost)
_SQLSTATE = re.compile(r"[0-9A-Z]{5}")
_CACHED_TEXT = 2048  # longer texts (values written into them) are not kept as keys
_FIXED = {
    "begin": "BEGIN",
    "commit": "COMMIT",
    "rollback": "ROLLBACK",
    "callproc": "CALL",
}


def _operation_name(query: Any) -> str | None:
    if isinstance(query, bytes):
        query = query[:400].decode("utf-8", "replace")
    if not isinstance(query, str):
        return None  # psycopg's sql.Composed: its text needs the connection
    found = _FIRST_WORD.match(query[:400])
    return found.group(1).upper() if found else None


def _status_code(code: Any) -> str | None:
    """The driver's error code as the conventions want it: a number (MySQL's), or a
    SQLSTATE (PostgreSQL's); not a class name (the generic adapter's stand-in)."""
    if isinstance(code, int) and not isinstance(code, bool):
        return str(code)
    if isinstance(code, str) and _SQLSTATE.fullmatch(code):
        return code
    return None


def _event_name(event: Event) -> str:
    name = type(event).__name__
    return "resilient_dbapi." + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _event_attributes(event: Event) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for spec in fields(event):
        value = getattr(event, spec.name)
        if value is None:
            continue
        if spec.name == "code":
            code = _status_code(value)
            if code is not None:
                attributes["db.response.status_code"] = code
        elif spec.name == "where":
            attributes["resilient_dbapi.server"] = value
        elif isinstance(value, tuple):
            attributes[f"resilient_dbapi.{spec.name}"] = [str(v) for v in value]
        else:
            attributes[f"resilient_dbapi.{spec.name}"] = value
    return attributes


def _server(described: str) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` from a connection's description
    (``pymysql 127.0.0.1:3306``, ``mysqlclient 127.0.0.1 via TCP/IP``)."""
    parts = described.split(" ", 2)
    if len(parts) < 2 or parts[1] in ("?", "(closed)"):
        return None, None
    where = parts[1]
    if where.startswith("/"):
        return where, None  # a Unix socket
    host, colon, port = where.rpartition(":")
    if colon and port.isdigit() and host not in ("", "?"):
        return host.strip("[]"), int(port)
    return where, None


def _system(conn: Any) -> str:
    adapter = conn._adapter
    if adapter.postgres:
        return "postgresql"
    name = adapter.name
    if "sqlite" in name:
        return "sqlite"
    raw = conn._raw
    version = getattr(raw, "server_version", None)
    if not isinstance(version, str):
        getter = getattr(raw, "get_server_info", None)
        try:
            version = getter() if callable(getter) else None
        except Exception:  # a closed connection: say what the driver is for
            version = None
    if isinstance(version, str) and "mariadb" in version.lower():
        return "mariadb"
    if name in ("pymysql", "aiomysql", "mysqlclient", "mysql-connector", "asyncmy"):
        return "mysql"
    return "other_sql"


class _Operation:
    """One logical operation: its span (or another instrumentation's), its duration."""

    __slots__ = (
        "_batch",
        "_conn",
        "_mode",
        "_name",
        "_query",
        "_span",
        "_started",
        "_telemetry",
        "_token",
    )

    def __init__(
        self, telemetry: _OpenTelemetry, conn: Any, name: str, query: Any, batch: int | None
    ) -> None:
        self._telemetry = telemetry
        self._conn = conn
        self._name = name
        self._query = query
        self._batch = batch
        self._mode = _QUIET
        self._token: object = None

    def __enter__(self) -> _Operation:
        if context.get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            return self  # suppress_instrumentation(): nothing of ours either
        current = trace.get_current_span()
        outer = getattr(current, "attributes", None)
        if (
            outer
            and getattr(current, "kind", None) is SpanKind.CLIENT
            and current.is_recording()
            and ("db.system" in outer or "db.system.name" in outer)
        ):
            # Another instrumentation's database span around ours (a DB-API integration
            # wrapping resilient_dbapi.connect): it gets our events, nothing is doubled.
            self._mode = _ANNOTATE
            self._span = current
            self._token = context.attach(context.set_value(_OPERATION, self))
            return self
        self._span = self._telemetry.tracer.start_span(
            self._operation or self._telemetry.system(self._conn), kind=SpanKind.CLIENT
        )
        self._mode = _OWN
        ctx = trace.set_span_in_context(self._span)
        # The driver's own DB-API instrumentation, if any, would count the same
        # statement again (once per attempt): it stays quiet inside ours.
        ctx = context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, ctx)
        self._token = context.attach(context.set_value(_OPERATION, self, ctx))
        self._started = _perf()
        return self

    @property
    def _operation(self) -> str | None:
        name = _FIXED.get(self._name)
        if name is None:
            name = self._telemetry.operation_name(self._query)
            if self._name == "executemany" and name is not None:
                name = f"BATCH {name}" if self._batch is None or self._batch > 1 else name
        return name

    def event(self, event: Event) -> None:
        self._span.add_event(_event_name(event), _event_attributes(event))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            context.detach(self._token)  # type: ignore[arg-type]
        if self._mode is not _OWN:
            return
        elapsed = _perf() - self._started
        span = self._span
        try:
            self._finish(span, elapsed, exc)
        except Exception:  # telemetry must never replace the caller's outcome
            log.debug("resilient_dbapi: recording an operation failed", exc_info=True)
        finally:
            span.end()

    def _finish(self, span: Any, elapsed: float, exc: BaseException | None) -> None:
        telemetry = self._telemetry
        conn = self._conn
        attributes: dict[str, Any] = {"db.system.name": telemetry.system(conn)}
        namespace = telemetry.namespace(conn)
        if namespace is not None:
            attributes["db.namespace"] = namespace
        operation = self._operation
        if operation is not None:
            attributes["db.operation.name"] = operation
        address, port = telemetry.server(conn._described)
        if address is not None:
            attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
        if exc is not None:
            code = (
                _status_code(conn._adapter.error_code(exc)) if isinstance(exc, Exception) else None
            )
            if code is not None:
                attributes["db.response.status_code"] = code
            cls = type(exc)
            attributes["error.type"] = f"{cls.__module__}.{cls.__qualname__}"
        telemetry.instruments.duration.record(elapsed, attributes)
        if self._batch is not None and self._batch > 1:
            attributes["db.operation.batch.size"] = self._batch
        if self._name == "callproc" and isinstance(self._query, str):
            attributes["db.stored_procedure.name"] = self._query
        if telemetry.capture_query_text and isinstance(self._query, str | bytes):
            query = self._query
            attributes["db.query.text"] = (
                query.decode("utf-8", "replace") if isinstance(query, bytes) else query
            )
        span.set_attributes(attributes)
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))


class _Instruments:
    """The instruments of one meter, made once: a second ``instrument()`` on the same
    meter provider gets the same ones (the SDK would hand back the first instrument of a
    name, with its first callback), and the connections both count."""

    def __init__(self, meter: Meter) -> None:
        self.duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
        self.create_time = meter.create_histogram(
            "db.client.connection.create_time",
            unit="s",
            description="The time it took to create a new connection.",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
        self.replacements = meter.create_counter(
            "resilient_dbapi.connection.replacements",
            unit="{connection}",
            description="Physical connections replaced, by reason.",
        )
        self.work_lost = meter.create_counter(
            "resilient_dbapi.work_lost",
            unit="{operation}",
            description="Work a dropped connection took with it: a transaction lost, "
            "an outcome unknown, a session's state lost.",
        )
        # Each traced connection, with its pool's name and its database.
        self.connections: weakref.WeakKeyDictionary[Any, tuple[str, str | None]] = (
            weakref.WeakKeyDictionary()
        )
        self.lock = threading.Lock()
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[self._count],
            unit="{connection}",
            description="The number of connections that are currently in state "
            "described by the state attribute.",
        )

    def _count(self, options: CallbackOptions) -> Iterable[Observation]:
        with self.lock:
            connections = [(conn, known[0]) for conn, known in list(self.connections.items())]
        counts: dict[tuple[str, str], int] = {}
        for conn, pool in connections:
            if conn._closed:
                continue
            engine = conn._engine
            used = conn._guard.locked() or engine.txn_writes or engine.explicit
            key = (pool, "used" if used else "idle")
            counts[key] = counts.get(key, 0) + 1
        for pool in {pool for _, pool in connections}:
            for state in ("idle", "used"):
                yield Observation(
                    counts.get((pool, state), 0),
                    {"db.client.connection.pool.name": pool, "db.client.connection.state": state},
                )


_instruments: weakref.WeakKeyDictionary[Meter, _Instruments] = weakref.WeakKeyDictionary()
_instruments_lock = threading.Lock()


def _instruments_of(meter: Meter) -> _Instruments:
    with _instruments_lock:
        made = _instruments.get(meter)
        if made is None:
            made = _instruments[meter] = _Instruments(meter)
        return made


class _OpenTelemetry:
    """The integration: spans, events and metrics for the connections it traces."""

    def __init__(self, tracer: Tracer, meter: Meter, capture_query_text: bool) -> None:
        self.tracer = tracer
        self.capture_query_text = capture_query_text
        self.instruments = _instruments_of(meter)
        self._operations: dict[Any, str | None] = {}
        self._servers: dict[str, tuple[str | None, int | None]] = {}
        self._systems: weakref.WeakKeyDictionary[Any, tuple[int, str]] = weakref.WeakKeyDictionary()

    # -- the hook (see resilient_dbapi._telemetry) ---------------------------------

    def operation(
        self, conn: Any, name: str, query: Any = None, batch: int | None = None
    ) -> _Operation:
        return _Operation(self, conn, name, query, batch)

    def listener(self, pool: str) -> Callable[[Event], object]:
        pool_attributes = {"db.client.connection.pool.name": pool}
        instruments = self.instruments

        def on_event(event: Event) -> None:
            operation = context.get_value(_OPERATION)
            if isinstance(operation, _Operation):
                operation.event(event)
            if context.get_value(_SUPPRESS_INSTRUMENTATION_KEY) and operation is None:
                return  # inside suppress_instrumentation(), outside our operations
            if isinstance(event, Connected | Reconnected):
                instruments.create_time.record(event.seconds, pool_attributes)
            if isinstance(event, Reconnected):
                instruments.replacements.add(
                    1, {**pool_attributes, "resilient_dbapi.reason": event.reason}
                )
            elif isinstance(event, _LOST_WORK):
                kind = _event_name(event).removeprefix("resilient_dbapi.")
                instruments.work_lost.add(1, {**pool_attributes, "resilient_dbapi.kind": kind})

        return on_event

    def track(self, conn: Any, pool: str, namespace: str | None) -> None:
        instruments = self.instruments
        with instruments.lock:
            instruments.connections[conn] = (pool, namespace)

    # -- what the operations ask, cached -------------------------------------------

    def namespace(self, conn: Any) -> str | None:
        known = self.instruments.connections.get(conn)
        return known[1] if known is not None else None

    def operation_name(self, query: Any) -> str | None:
        if not isinstance(query, str | bytes) or len(query) > _CACHED_TEXT:
            return _operation_name(query)
        found = self._operations.get(query, _UNKNOWN)
        if found is not _UNKNOWN:
            return found  # type: ignore[return-value]
        name = _operation_name(query)
        if len(self._operations) >= 4096:
            self._operations.clear()  # bounded: texts made up per call never pile up
        self._operations[query] = name
        return name

    def server(self, described: str) -> tuple[str | None, int | None]:
        found = self._servers.get(described)
        if found is None:
            found = _server(described)
            if len(self._servers) >= 1024:
                self._servers.clear()
            self._servers[described] = found
        return found

    def system(self, conn: Any) -> str:
        known = self._systems.get(conn)
        if known is not None and known[0] == conn._gen:
            return known[1]
        system = _system(conn)
        self._systems[conn] = (conn._gen, system)
        return system


class ResilientDbapiInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces and measures the resilient connections opened after :meth:`instrument`.

    ``instrument(tracer_provider=None, meter_provider=None, capture_query_text=False)``;
    ``uninstrument()`` leaves connections opened from then on untraced (open ones keep
    their tracing until closed)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        capture = kwargs.get("capture_query_text", False)
        if not isinstance(capture, bool):
            raise TypeError(
                f"capture_query_text must be True or False, got {type(capture).__qualname__}"
            )
        from .. import __version__

        tracer = trace.get_tracer(
            _SCOPE, __version__, tracer_provider=kwargs.get("tracer_provider")
        )
        meter = get_meter(_SCOPE, __version__, meter_provider=kwargs.get("meter_provider"))
        _telemetry.install(_OpenTelemetry(tracer, meter, capture))

    def _uninstrument(self, **kwargs: Any) -> None:
        _telemetry.uninstall()
