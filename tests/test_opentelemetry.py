"""OpenTelemetry: one span per logical operation with the database conventions'
attributes, what the connection did as span events, the standard metrics; composing with
OpenTelemetry's own DB-API instrumentation without counting anything twice. Asserted
through the SDK's in-memory exporters, against the real server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import aiomysql
import pymysql
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import resilient_dbapi
from resilient_dbapi import aio
from resilient_dbapi.contrib.opentelemetry import ResilientDbapiInstrumentor
from resilient_dbapi.testing import kill_connection

from .conftest import kill, rows
from .test_aio import aio_kwargs, run

pytestmark = pytest.mark.server


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def finished(self, scope: str | None = "resilient_dbapi") -> list[ReadableSpan]:
        return [
            span
            for span in self.spans.get_finished_spans()
            if scope is None
            or (span.instrumentation_scope is not None and span.instrumentation_scope.name == scope)
        ]

    def points(self, name: str, scope: str | None = "resilient_dbapi") -> list[Any]:
        data = self.metrics.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data is not None else ():
            for scoped in resource.scope_metrics:
                if scope is not None and scoped.scope.name != scope:
                    continue
                for metric in scoped.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    yield Telemetry(spans, metrics, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def traced(otel: Telemetry) -> Iterator[Telemetry]:
    """Our instrumentation on, off again after the test."""
    instrumentor = ResilientDbapiInstrumentor()
    instrumentor.instrument(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    try:
        yield otel
    finally:
        instrumentor.uninstrument()


def _names(spans: list[ReadableSpan]) -> list[str]:
    return [span.name for span in spans]


def test_one_client_span_per_operation_with_the_conventions_attributes(
    traced: Telemetry, db: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor()
    cur.execute("SELECT uid FROM t WHERE id = %s", (1,))
    cur.execute("/* app */ INSERT INTO t (uid) VALUES (%s)", ("secret-value",))
    cur.executemany("INSERT INTO t (uid) VALUES (%s)", [("a",), ("b",)])
    conn.commit()
    with pytest.raises(pymysql.err.ProgrammingError):
        cur.execute("SELECT uid FROM missing")
    conn.rollback()
    conn.close()

    spans = traced.finished()
    assert _names(spans) == ["SELECT", "INSERT", "BATCH INSERT", "COMMIT", "SELECT", "ROLLBACK"]
    for span in spans:
        assert span.kind is SpanKind.CLIENT
        assert span.attributes is not None
        assert span.attributes["db.system.name"] == "mariadb"
        assert span.attributes["db.operation.name"] == span.name
        assert span.attributes["server.address"] == db["host"]
        assert span.attributes["server.port"] == db["port"]
        assert span.attributes["db.namespace"] == db["database"]
        assert "db.query.text" not in span.attributes  # only when asked for
        assert all("secret-value" not in str(v) for v in span.attributes.values())
    assert spans[2].attributes is not None
    assert spans[2].attributes["db.operation.batch.size"] == 2
    failed = spans[4]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["db.response.status_code"] == "1146"
    assert failed.attributes["error.type"] == "pymysql.err.ProgrammingError"
    assert [e.name for e in failed.events] == ["exception"]
    assert all(span.status.status_code is StatusCode.UNSET for span in spans[:4])

    durations = traced.points("db.client.operation.duration")
    by_operation = {
        (p.attributes["db.operation.name"], p.attributes.get("error.type")): p.count
        for p in durations
    }
    assert sum(by_operation.values()) == 6
    assert by_operation[("SELECT", None)] == 1
    assert by_operation["COMMIT", None] == 1
    assert sum(count for (_, error), count in by_operation.items() if error) == 1
    assert all(p.attributes["db.system.name"] == "mariadb" for p in durations)


def test_a_killed_connection_shows_as_events_on_the_statement_that_survived_it(
    traced: Telemetry, server: Any, db: dict[str, Any]
) -> None:
    """The server kills the idle connection: plain PyMySQL's INSERT fails; ours is one
    span, status unset, with the reconnect as its event, and the replacement counted."""
    plain = pymysql.connect(autocommit=True, **db)
    kill(server, plain.thread_id())
    with pytest.raises(pymysql.err.OperationalError):
        plain.cursor().execute("INSERT INTO t (uid) VALUES ('plain')")
    plain.close()

    conn = resilient_dbapi.connect(pymysql.connect, autocommit=True, **db)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    kill(server, conn.thread_id())
    traced.spans.clear()
    cur.execute("INSERT INTO t (uid) VALUES (%s)", ("once",))
    conn.close()
    assert rows(server, db, "SELECT uid FROM t") == [("once",)]

    (span,) = traced.finished()
    assert span.name == "INSERT"
    assert span.status.status_code is StatusCode.UNSET
    events = {event.name: event for event in span.events}
    assert "resilient_dbapi.reconnected" in events
    reconnected = events["resilient_dbapi.reconnected"].attributes
    assert reconnected is not None
    assert reconnected["resilient_dbapi.reason"] in ("liveness", "error")
    assert reconnected["resilient_dbapi.attempts"] == 1
    assert reconnected["resilient_dbapi.server"] == f"pymysql {db['host']}:{db['port']}"

    replaced = traced.points("resilient_dbapi.connection.replacements")
    assert sum(p.value for p in replaced) == 1
    created = traced.points("db.client.connection.create_time")
    assert sum(p.count for p in created) == 2  # the first connection and its replacement
    pool = f"pymysql {db['host']}:{db['port']}/{db['database']}"
    assert {p.attributes["db.client.connection.pool.name"] for p in created} == {pool}


def test_a_lost_transaction_is_an_error_span_with_the_verdict_as_its_event(
    traced: Telemetry, server: Any, db: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor()
    conn.begin()
    cur.execute("INSERT INTO t (uid) VALUES ('lost')")
    kill(server, conn.thread_id())
    traced.spans.clear()
    with pytest.raises(resilient_dbapi.TransactionLostError) as lost:
        cur.execute("INSERT INTO t (uid) VALUES ('second')")
    conn.rollback()
    conn.close()
    assert rows(server, db, "SELECT uid FROM t") == []

    insert = traced.finished()[0]
    assert insert.status.status_code is StatusCode.ERROR
    assert insert.attributes is not None
    assert insert.attributes["error.type"].endswith("TransactionLostError")
    assert insert.attributes["db.response.status_code"] == str(lost.value.args[0])
    assert "resilient_dbapi.transaction_lost" in [event.name for event in insert.events]
    lost_work = traced.points("resilient_dbapi.work_lost")
    assert [(p.attributes["resilient_dbapi.kind"], p.value) for p in lost_work] == [
        ("transaction_lost", 1)
    ]


@pytest.fixture
def database_conventions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """OpenTelemetry's DB-API instrumentation records its duration metric only under
    the new database conventions (``OTEL_SEMCONV_STABILITY_OPT_IN``, read once): on
    (with the old attributes too) for the test, as it was after."""
    from opentelemetry.instrumentation._semconv import (
        _OpenTelemetrySemanticConventionStability as Stability,
    )

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "database/dup")
    Stability._initialized = False
    Stability._initialize()
    yield
    monkeypatch.undo()
    Stability._initialized = False
    Stability._initialize()


def test_under_pymysql_instrumentation_nothing_is_counted_twice(
    otel: Telemetry, server: Any, db: dict[str, Any], database_conventions: None
) -> None:
    """OpenTelemetry's PyMySQL instrumentation alone makes one span (and one duration
    point) per attempt of the driver's, so a statement sent again is two; with ours on
    top, each logical operation is one span and one duration point, ours."""
    from opentelemetry.instrumentation import dbapi

    admin = server.admin()  # made before: the test's own KILL is not traced
    # What PyMySQLInstrumentor().instrument() does, with a meter provider of the test's
    # (it passes none: its metrics would go to the global one).
    dbapi.wrap_connect(
        "opentelemetry.instrumentation.pymysql",
        pymysql,
        "connect",
        "mysql",
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
    )
    try:
        plain = pymysql.connect(autocommit=True, **db)
        plain.cursor().execute("SELECT 1")
        kill_connection(admin, plain.thread_id(), wait=10.0)
        with pytest.raises(pymysql.err.OperationalError):
            plain.cursor().execute("INSERT INTO t (uid) VALUES ('plain')")
        plain.close()
        alone = otel.finished(scope=None)
        assert _names(alone) == ["SELECT", "INSERT"]  # theirs; the INSERT failed
        otel.spans.clear()

        ours = ResilientDbapiInstrumentor()
        ours.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
        try:
            conn = resilient_dbapi.connect(pymysql.connect, autocommit=True, **db)
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.execute("INSERT INTO t (uid) VALUES (%s)", ("a",))
            kill_connection(admin, conn.thread_id(), wait=10.0)
            cur.execute("INSERT INTO t (uid) VALUES (%s)", ("b",))
            conn.close()
        finally:
            ours.uninstrument()
    finally:
        dbapi.unwrap_connect(pymysql, "connect")
        admin.close()
    assert rows(server, db, "SELECT uid FROM t ORDER BY id") == [("a",), ("b",)]

    everything = otel.finished(scope=None)
    assert _names(everything) == ["SELECT", "INSERT", "INSERT"]
    assert {s.instrumentation_scope.name for s in everything} == {"resilient_dbapi"}  # type: ignore[union-attr]
    assert "resilient_dbapi.reconnected" in [event.name for event in everything[2].events]
    ours_points = otel.points("db.client.operation.duration")
    assert sum(p.count for p in ours_points) == 3
    every_point = otel.points("db.client.operation.duration", scope=None)
    # Theirs measured the plain connection's two statements, and nothing of ours.
    assert sum(p.count for p in every_point) == 3 + 2


def test_a_database_span_opened_around_ours_gets_the_events_and_no_second_span(
    traced: Telemetry, server: Any, db: dict[str, Any]
) -> None:
    """A DB-API integration wrapping ``resilient_dbapi.connect`` itself opens a database
    span per statement: ours is not made, and the reconnect is an event on theirs."""
    from opentelemetry.instrumentation import dbapi

    dbapi.wrap_connect(
        "outer", resilient_dbapi, "connect", "mysql", tracer_provider=traced.tracer_provider
    )
    try:
        conn = resilient_dbapi.connect(pymysql.connect, autocommit=True, **db)
        cur = conn.cursor()
        cur.execute("SELECT 1")
        kill(server, conn.thread_id())
        traced.spans.clear()
        cur.execute("INSERT INTO t (uid) VALUES (%s)", ("x",))
        conn.close()
    finally:
        dbapi.unwrap_connect(resilient_dbapi, "connect")
    assert traced.finished() == []
    (outer,) = traced.finished(scope="outer")
    assert "resilient_dbapi.reconnected" in [event.name for event in outer.events]
    assert traced.points("db.client.operation.duration") == []


def test_connections_are_counted_idle_or_used_by_pool(
    traced: Telemetry, db: dict[str, Any]
) -> None:
    make = resilient_dbapi.creator(pymysql.connect, **db)
    first, second = make(), make()
    first.begin()
    first.cursor().execute("INSERT INTO t (uid) VALUES ('in a transaction')")
    pool = f"pymysql {db['host']}:{db['port']}/{db['database']}"

    def counts() -> dict[str, int]:
        found = {}
        for point in traced.points("db.client.connection.count"):
            assert point.attributes["db.client.connection.pool.name"] == pool
            found[point.attributes["db.client.connection.state"]] = point.value
        return found

    assert counts() == {"idle": 1, "used": 1}
    first.commit()
    assert counts() == {"idle": 2, "used": 0}
    first.close()
    assert counts() == {"idle": 1, "used": 0}
    second.close()
    assert counts() == {"idle": 0, "used": 0}


def test_query_text_only_when_asked_and_never_the_parameters(
    otel: Telemetry, db: dict[str, Any]
) -> None:
    instrumentor = ResilientDbapiInstrumentor()
    instrumentor.instrument(
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
        capture_query_text=True,
    )
    try:
        conn = resilient_dbapi.connect(pymysql.connect, **db)
        conn.cursor().execute("SELECT uid FROM t WHERE uid = %s", ("secret-value",))
        conn.close()
    finally:
        instrumentor.uninstrument()
    (span,) = otel.finished()
    assert span.attributes is not None
    assert span.attributes["db.query.text"] == "SELECT uid FROM t WHERE uid = %s"
    assert "secret-value" not in repr(span.to_json())


def test_bad_arguments_are_refused_naming_what_is_allowed(otel: Telemetry) -> None:
    instrumentor = ResilientDbapiInstrumentor()
    with pytest.raises(TypeError, match="capture_query_text must be True or False"):
        instrumentor.instrument(tracer_provider=otel.tracer_provider, capture_query_text="yes")
    instrumentor.uninstrument()


def test_connections_opened_without_instrumentation_have_nothing_of_it(
    otel: Telemetry, db: dict[str, Any]
) -> None:
    """Opened before ``instrument()`` or after ``uninstrument()``: no span, and the
    tracing mixins are not even in the proxy's classes (the hot path pays nothing)."""
    before = resilient_dbapi.connect(pymysql.connect, **db)
    instrumentor = ResilientDbapiInstrumentor()
    instrumentor.instrument(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    during = resilient_dbapi.connect(pymysql.connect, **db)
    instrumentor.uninstrument()
    after = resilient_dbapi.connect(pymysql.connect, **db)
    mros = {}
    for name, conn in (("before", before), ("during", during), ("after", after)):
        cur = conn.cursor()
        cur.execute("SELECT 1")
        mros[name] = [k.__name__ for k in (*type(conn).__mro__, *type(cur).__mro__)]
        conn.close()
    assert _names(otel.finished()) == ["SELECT"]
    assert not any("Traced" in name for name in mros["before"] + mros["after"])
    assert {"TracedConnection", "TracedCursor"} <= set(mros["during"])


def test_asyncio_connections_are_traced_the_same_way(
    traced: Telemetry, server: Any, db: dict[str, Any]
) -> None:
    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, autocommit=True, **aio_kwargs(db))
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1")
            kill(server, conn.thread_id())
            await cur.execute("INSERT INTO t (uid) VALUES (%s)", ("async",))
        await conn.commit()
        conn.close()

    run(main())
    assert rows(server, db, "SELECT uid FROM t") == [("async",)]
    spans = traced.finished()
    assert _names(spans) == ["SELECT", "INSERT", "COMMIT"]
    assert all(s.attributes and s.attributes["db.system.name"] == "mariadb" for s in spans)
    assert "resilient_dbapi.reconnected" in [event.name for event in spans[1].events]


def test_opentelemetry_instrument_finds_the_instrumentor_by_its_entry_point() -> None:
    (found,) = [
        point
        for point in entry_points(group="opentelemetry_instrumentor")
        if point.name == "resilient_dbapi"
    ]
    assert found.load() is ResilientDbapiInstrumentor


def test_sqlite_statements_are_traced_too(traced: Telemetry) -> None:
    """An in-process database's statements go straight to the driver untraced (at the
    driver's cost); traced, they go through the span."""
    import sqlite3

    conn = resilient_dbapi.connect(sqlite3.connect, ":memory:")
    cur = conn.cursor()
    cur.execute("CREATE TABLE t (x INT)")
    cur.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    spans = traced.finished()
    assert _names(spans) == ["CREATE", "INSERT", "COMMIT"]
    assert {s.attributes["db.system.name"] for s in spans if s.attributes} == {"sqlite"}


def test_begin_is_an_operation_and_suppression_is_honoured(
    traced: Telemetry, db: dict[str, Any]
) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    conn = resilient_dbapi.connect(pymysql.connect, **db)
    conn.begin()
    with suppress_instrumentation():
        conn.cursor().execute("SELECT 1")  # a health check the application hides
    conn.rollback()
    conn.close()
    assert _names(traced.finished()) == ["BEGIN", "ROLLBACK"]
    durations = traced.points("db.client.operation.duration")
    assert sorted(p.attributes["db.operation.name"] for p in durations) == ["BEGIN", "ROLLBACK"]


def test_instrumenting_again_on_the_same_meter_provider_keeps_counting(
    otel: Telemetry, db: dict[str, Any]
) -> None:
    """The SDK hands back the first instrument of a name, with its first callback: the
    connections opened after a second ``instrument()`` are still counted."""
    instrumentor = ResilientDbapiInstrumentor()
    providers = {"tracer_provider": otel.tracer_provider, "meter_provider": otel.meter_provider}
    instrumentor.instrument(**providers)
    first = resilient_dbapi.connect(pymysql.connect, **db)
    instrumentor.uninstrument()
    instrumentor.instrument(**providers)
    try:
        second = resilient_dbapi.connect(pymysql.connect, **db)
        states = {
            p.attributes["db.client.connection.state"]: p.value
            for p in otel.points("db.client.connection.count")
        }
        assert states == {"idle": 2, "used": 0}
        first.close()
        second.close()
    finally:
        instrumentor.uninstrument()


def test_a_replayed_transaction_is_an_event_on_the_statement_that_went_on(
    traced: Telemetry, server: Any, db: dict[str, Any]
) -> None:
    from resilient_dbapi import ReplayTransaction
    from resilient_dbapi.policies import default_policies

    policies = [*default_policies(), ReplayTransaction()]
    conn = resilient_dbapi.connect(pymysql.connect, policies=policies, **db)
    cur = conn.cursor()
    conn.begin()
    cur.execute("UPDATE t SET v = v + 1 WHERE uid = 'none'")
    kill(server, conn.thread_id())
    traced.spans.clear()
    cur.execute("UPDATE t SET v = v + 2 WHERE uid = 'none'")
    conn.commit()
    conn.close()
    update = traced.finished()[0]
    assert update.status.status_code is StatusCode.UNSET
    (replayed,) = [e for e in update.events if e.name == "resilient_dbapi.transaction_replayed"]
    assert replayed.attributes is not None
    assert replayed.attributes["resilient_dbapi.statements"] == 2  # begin() and the UPDATE
