"""JSON views over :class:`Item`; every write runs in ``transaction.atomic``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_http_methods, require_POST

from .models import Item


def _nothing() -> None:
    pass


# A seam for the scenario runner: called inside item_pair's transaction, between its two
# writes (the runner kills the connection there).
between_writes: Callable[[], None] = _nothing


def _session_id() -> int:
    """The server's id of the current physical connection, read without a query."""
    raw = connection.connection
    if connection.vendor == "postgresql":
        return int(raw.info.backend_pid)
    return int(raw.thread_id())


def _connection_state() -> dict[str, Any]:
    """What the current physical connection is: its server thread id, the session settings
    Django and the init_command made, and resilient_dbapi's counters (when in use)."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SELECT pg_backend_pid(), current_setting('transaction_isolation'), 0")
        else:
            cur.execute("SELECT CONNECTION_ID(), @@session.tx_isolation, @@session.wait_timeout")
        thread_id, isolation, wait_timeout = cur.fetchone()
    raw = connection.connection
    state: dict[str, Any] = {
        "driver": f"{type(raw).__module__}.{type(raw).__qualname__}",
        "thread_id": thread_id,
        "isolation": isolation,
        "wait_timeout": wait_timeout,
    }
    stats = getattr(raw, "stats", None)
    if stats is not None:
        state["reconnects"] = stats.reconnects
        state["reconnect_reasons"] = dict(stats.reconnect_reasons)
        state["transactions_lost"] = stats.transactions_lost
        state["transactions_replayed"] = stats.transactions_replayed
    return state


@require_http_methods(["GET", "POST"])
def item_list(request: HttpRequest) -> JsonResponse:
    """GET: every item and the connection's state. POST: create one item."""
    if request.method == "POST":
        with transaction.atomic():
            item = Item.objects.create(
                name=request.POST["name"], qty=int(request.POST.get("qty", 0))
            )
        # Read without a query: which physical connection served the write.
        return JsonResponse({"item": item.as_dict(), "thread_id": _session_id()}, status=201)
    items = [item.as_dict() for item in Item.objects.order_by("id")]
    return JsonResponse({"items": items, "connection": _connection_state()})


@require_POST
def item_update(request: HttpRequest, pk: int) -> JsonResponse:
    with transaction.atomic():
        item = get_object_or_404(Item.objects.select_for_update(), pk=pk)
        item.qty = int(request.POST["qty"])
        item.save(update_fields=["qty"])
    return JsonResponse({"item": item.as_dict()})


@require_POST
def item_delete(request: HttpRequest, pk: int) -> JsonResponse:
    with transaction.atomic():
        deleted, _ = Item.objects.filter(pk=pk).delete()
    return JsonResponse({"deleted": deleted})


@require_POST
def item_bulk(request: HttpRequest) -> JsonResponse:
    """Create several items, all or none: a duplicate name rolls the whole batch back."""
    names = request.POST["names"].split(",")
    try:
        with transaction.atomic():
            for name in names:
                Item.objects.create(name=name)
    except IntegrityError as exc:
        cause = exc.__cause__
        code = getattr(cause, "sqlstate", None) if connection.vendor == "postgresql" else None
        return JsonResponse({"error": "duplicate", "code": code or exc.args[0]}, status=409)
    return JsonResponse({"created": len(names)}, status=201)


@require_POST
def item_pair(request: HttpRequest) -> JsonResponse:
    """Two writes in one transaction, with :data:`between_writes` called between them."""
    with transaction.atomic():
        first = Item.objects.create(name=request.POST["first"])
        between_writes()
        second = Item.objects.create(name=request.POST["second"])
    return JsonResponse({"items": [first.as_dict(), second.as_dict()]}, status=201)


@require_POST
def item_move(request: HttpRequest) -> JsonResponse:
    """Move ``qty`` from one item to another in one transaction: both rows locked and
    read, then changed by relative updates (no id for the server to assign), with
    :data:`between_writes` called between the two."""
    qty = int(request.POST["qty"])
    with transaction.atomic():
        source = Item.objects.select_for_update().get(pk=int(request.POST["source"]))
        target = Item.objects.select_for_update().get(pk=int(request.POST["target"]))
        # Relative updates: one applied twice shows in the result.
        Item.objects.filter(pk=source.pk).update(qty=F("qty") - qty)
        between_writes()
        Item.objects.filter(pk=target.pk).update(qty=F("qty") + qty)
        source.refresh_from_db()
        target.refresh_from_db()
    state = _connection_state()
    return JsonResponse({"items": [source.as_dict(), target.as_dict()], "connection": state})
