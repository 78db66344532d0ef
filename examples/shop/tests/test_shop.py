"""The shop against a real MariaDB while the server kills, times out and restarts its
connections: no order lost, none taken twice, the stock always matching the orders; and
the same faults breaking the shop on plain PyMySQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pymysql
import pytest
from shop import Shop

from resilient_dbapi.testing import ServerFaults, WriteLedger


@pytest.fixture
def shop(mariadb: dict[str, Any]) -> Any:
    service = Shop.on(**mariadb)
    service.create_schema({"teapot": 1000})
    yield service
    service.close()


def test_orders_go_on_when_the_server_kills_the_connections(
    shop: Shop, db_faults: ServerFaults
) -> None:
    shop.place_order("o-1", "teapot", 2)
    assert db_faults.kill_connections() == 1
    shop.place_order("o-2", "teapot", 3)  # on a new connection
    assert shop.orders() == ["o-1", "o-2"]
    assert shop.stock("teapot") == 995


def test_orders_go_on_after_the_server_timed_out_an_idle_connection(
    mariadb: dict[str, Any], db_faults: ServerFaults
) -> None:
    with db_faults.wait_timeout(1):
        shop = Shop.on(**mariadb)
        shop.create_schema({"teapot": 10})
        time.sleep(1.5)  # the server closes the idle session
        shop.place_order("o-1", "teapot", 1)
    assert shop.stock("teapot") == 9
    shop.close()


def test_orders_go_on_across_a_restart(mariadb_server_own: Any) -> None:
    admin = mariadb_server_own.admin()
    admin.cursor().execute("CREATE DATABASE shop")
    admin.close()
    shop = Shop.on(**mariadb_server_own.connect_kwargs(database="shop"))
    shop.create_schema({"teapot": 10})
    ServerFaults(mariadb_server_own).restart(down_for=0.2)
    shop.place_order("o-1", "teapot", 1)
    assert shop.stock("teapot") == 9
    shop.close()


def test_kills_during_orders_lose_none_and_take_none_twice(
    mariadb: dict[str, Any], db_faults: ServerFaults, write_ledger: WriteLedger
) -> None:
    shop = Shop.on(**mariadb)
    shop.create_schema({"teapot": 1000})
    done = threading.Event()

    def killer() -> None:
        while not done.wait(0.05):
            db_faults.kill_connections()

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        for _ in range(150):
            order = write_ledger.new_id("o")
            try:
                shop.place_order(order, "teapot", 1)
            except pymysql.err.OperationalError:
                write_ledger.outcome_unknown([order])  # told: perhaps applied
            else:
                write_ledger.acknowledge([order])
    finally:
        done.set()
        thread.join()
    orders = shop.orders()
    check = write_ledger.check(orders)
    assert check.ok, check
    assert shop.stock("teapot") == 1000 - len(orders)  # stock and orders went together
    shop.close()


def test_on_plain_pymysql_the_same_kill_breaks_the_shop(
    mariadb: dict[str, Any], db_faults: ServerFaults
) -> None:
    shop = Shop(lambda: pymysql.connect(**mariadb))
    shop.create_schema({"teapot": 10})
    db_faults.kill_connections()
    with pytest.raises(pymysql.err.OperationalError):
        shop.place_order("o-1", "teapot", 1)
