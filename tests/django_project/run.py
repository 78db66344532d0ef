"""Run one scenario of the test project in this process; print its result as one JSON line.

    python -m tests.django_project.run SCENARIO --mode MODE

MODE: resilient, plain, engine or mysqlclient (MySQL); pg-engine or pg (PostgreSQL).

The database comes from ``DJANGO_DB_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD`` and
``_NAME``. Django is configured once per process and ``MySQLdb`` can be only one module, so
each scenario and mode runs in a process of its own. Requests go through Django's WSGI
handler as a server sends them: the body is consumed and ``close()`` called, which fires
``request_finished`` and with it Django's ``close_old_connections`` (the test Client
disconnects that, so it could not show what a persistent connection does).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

import pymysql  # PyMySQL's own, for the admin connection that kills from outside

SCENARIOS = ("crud", "idle", "kill", "atomic_lost", "move_lost", "debug_queries")
# Django's request handler turns an exception into a 500; got_request_exception shows it.
_exceptions: list[BaseException] = []


def _record_exception(sender: object, **kwargs: object) -> None:
    exc = sys.exc_info()[1]
    if exc is not None:
        _exceptions.append(exc)


def _jsonable(value: object) -> object:
    return value if isinstance(value, int | str | float | None) else repr(value)


def _describe(exc: BaseException | None) -> dict[str, Any] | None:
    """An exception as data: its class, its args and its cause's, by qualified name."""
    if exc is None:
        return None
    return {
        "mro": [f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__],
        "args": [_jsonable(a) for a in exc.args],
        "cause": _describe(exc.__cause__),
    }


def request(app: Callable[..., Iterable[bytes]], method: str, path: str, **form: str) -> Any:
    """One request through the WSGI application, as a WSGI server would make it."""
    from wsgiref.util import setup_testing_defaults

    body = urllib.parse.urlencode(form).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    setup_testing_defaults(environ)
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    del _exceptions[:]
    started = time.monotonic()
    response: Any = app(environ, start_response)
    try:
        content = b"".join(response)
    finally:
        response.close()  # fires request_finished: Django's close_old_connections
    seconds = time.monotonic() - started
    try:
        payload: Any = json.loads(content)
    except ValueError:
        payload = content.decode(errors="replace")[:200]
    return {
        "status": int(statuses[0].split()[0]),
        "body": payload,
        "error": _describe(_exceptions[0] if _exceptions else None),
        "seconds": round(seconds, 3),
    }


def _postgres() -> bool:
    return os.environ.get("DJANGO_MYSQLDB", "").startswith("pg")


def _admin() -> Any:
    if _postgres():
        import psycopg

        return psycopg.connect(
            host=os.environ.get("DJANGO_DB_HOST", "127.0.0.1"),
            port=int(os.environ.get("DJANGO_DB_PORT", "5432")),
            user=os.environ.get("DJANGO_DB_USER", "postgres"),
            dbname="postgres",
            autocommit=True,
        )
    return pymysql.connect(
        host=os.environ.get("DJANGO_DB_HOST", "127.0.0.1"),
        port=int(os.environ.get("DJANGO_DB_PORT", "3306")),
        user=os.environ.get("DJANGO_DB_USER", "root"),
        password=os.environ.get("DJANGO_DB_PASSWORD", ""),
        autocommit=True,
    )


def alive(thread_id: int) -> bool:
    """Whether the server still has a connection with this thread id."""
    admin = _admin()
    try:
        with admin.cursor() as cur:
            if _postgres():
                cur.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = %s", (thread_id,))
            else:
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s",
                    (thread_id,),
                )
            return bool(cur.fetchone()[0])
    finally:
        admin.close()


def kill_thread(thread_id: int) -> None:
    """``KILL CONNECTION`` from another session; return once the server dropped it."""
    admin = _admin()
    try:
        with admin.cursor() as cur:
            if _postgres():
                cur.execute("SELECT pg_terminate_backend(%s)", (thread_id,))
            else:
                cur.execute(f"KILL CONNECTION {int(thread_id)}")
    finally:
        admin.close()
    deadline = time.monotonic() + 10
    while alive(thread_id) and time.monotonic() < deadline:
        time.sleep(0.01)


def migrate() -> None:
    """Apply the migrations, then drop that connection: the requests open their own."""
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0, interactive=False)
    connections.close_all()


def crud(app: Any) -> dict[str, Any]:
    migrate()
    created = request(app, "POST", "/items/", name="apple", qty="3")
    pk = created["body"]["item"]["id"]
    return {
        "create": created,
        "create_2": request(app, "POST", "/items/", name="pear"),
        "update": request(app, "POST", f"/items/{pk}/", qty="5"),
        "bulk_duplicate": request(app, "POST", "/items/bulk/", names="plum,apple"),
        "delete": request(app, "POST", f"/items/{pk}/delete/"),
        "list": request(app, "GET", "/items/"),
    }


def _idle_then_requests(app: Any, wait: Callable[[int], None]) -> dict[str, Any]:
    migrate()
    first = request(app, "POST", "/items/", name="a")
    thread_id = first["body"]["thread_id"]
    wait(thread_id)
    closed = not alive(thread_id)
    return {
        "first": first,
        "server_closed_it": closed,
        "second": request(app, "POST", "/items/", name="b"),
        "third": request(app, "GET", "/items/"),
    }


def idle(app: Any) -> dict[str, Any]:
    """The server closes the persistent connection after ``wait_timeout`` (1 s here)."""
    return _idle_then_requests(app, lambda thread_id: time.sleep(2.0))


def kill(app: Any) -> dict[str, Any]:
    """The persistent connection is killed from outside between two requests."""

    # No pause after the kill: the next request comes at once, inside resilient_dbapi's
    # PingOnCheckout.skip_recent window. The view's atomic() starts with autocommit(False),
    # which resilient_dbapi checks the socket for (and a "SET autocommit" lost in flight
    # is safe to send again), so the request still gets a new connection transparently.
    return _idle_then_requests(app, kill_thread)


def atomic_lost(app: Any) -> dict[str, Any]:
    """The connection is killed inside ``transaction.atomic()``, between two writes."""
    from .items import views

    migrate()
    warm = request(app, "GET", "/items/")

    def kill_own_connection() -> None:
        kill_thread(views._session_id())

    views.between_writes = kill_own_connection
    try:
        lost = request(app, "POST", "/items/pair/", first="x1", second="x2")
    finally:
        views.between_writes = views._nothing
    return {
        "warm": warm,
        "lost": lost,
        "next_read": request(app, "GET", "/items/"),
        "next_write": request(app, "POST", "/items/", name="after"),
    }


def move_lost(app: Any) -> dict[str, Any]:
    """The connection is killed inside ``transaction.atomic()`` between the two updates
    of a move (with replay on, see $RESILIENT_DBAPI_POLICY, it goes on), then the pair
    insert of :func:`atomic_lost` (an id the server assigns: never replayed)."""
    from .items import views

    migrate()
    source = request(app, "POST", "/items/", name="source", qty="100")
    target = request(app, "POST", "/items/", name="target", qty="100")

    def kill_own_connection() -> None:
        kill_thread(views._session_id())

    views.between_writes = kill_own_connection
    try:
        moved = request(
            app,
            "POST",
            "/items/move/",
            source=str(source["body"]["item"]["id"]),
            target=str(target["body"]["item"]["id"]),
            qty="10",
        )
        pair = request(app, "POST", "/items/pair/", first="x1", second="x2")
    finally:
        views.between_writes = views._nothing
    return {"moved": moved, "pair": pair, "after": request(app, "GET", "/items/")}


def debug_queries(app: Any) -> dict[str, Any]:
    """What Django's debug tools record of the SQL sent (``connection.queries``, the
    ``django.db.backends`` log, ``assertNumQueries``), and what a closed cursor raises."""
    migrate()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from .items.models import Item

    with CaptureQueriesContext(connection) as captured:
        Item.objects.filter(name="apple").count()
    cursor = connection.cursor()
    cursor.close()
    closed: BaseException | None = None
    try:
        cursor.execute("SELECT 1")
    except Exception as exc:
        closed = exc
    return {
        "captured": {"sql": [query["sql"] for query in captured.captured_queries]},
        "closed_cursor": {"error": _describe(closed)},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument(
        "--mode",
        choices=("resilient", "plain", "engine", "mysqlclient", "pg-engine", "pg"),
        required=True,
    )
    args = parser.parse_args(argv)
    os.environ["DJANGO_MYSQLDB"] = args.mode
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_project.settings"
    if args.scenario == "idle":
        os.environ["DJANGO_DB_INIT_COMMAND"] = "SET SESSION wait_timeout = 1"

    from django.core.signals import got_request_exception
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()  # runs django.setup(), which imports settings.py
    got_request_exception.connect(_record_exception)
    steps = globals()[args.scenario](app)
    print(json.dumps({"scenario": args.scenario, "mode": args.mode, "steps": steps}))


if __name__ == "__main__":
    main()
