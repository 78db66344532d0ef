"""A small order service, written the way an application would use resilient_dbapi: one
``creator()`` for the process, each request a short unit of work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymysql

import resilient_dbapi

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS stock (sku VARCHAR(32) PRIMARY KEY, quantity INT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS orders (id VARCHAR(64) PRIMARY KEY, sku VARCHAR(32) NOT NULL,"
    " quantity INT NOT NULL)",
)


class Shop:
    """Orders and stock; ``connect`` makes the connections (a pool would hold them)."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._conn = connect()

    @classmethod
    def on(cls, **db: Any) -> Shop:
        """The service over resilient_dbapi: the only line that differs from plain PyMySQL."""
        return cls(resilient_dbapi.creator(pymysql.connect, **db))

    def create_schema(self, stock: dict[str, int]) -> None:
        with self._conn.cursor() as cur:
            for statement in SCHEMA:
                cur.execute(statement)
            for sku, quantity in stock.items():
                cur.execute("REPLACE INTO stock VALUES (%s, %s)", (sku, quantity))
        self._conn.commit()

    def place_order(self, order_id: str, sku: str, quantity: int) -> None:
        """Take ``quantity`` of ``sku`` from the stock and record the order, together or
        not at all; a transaction lost to the connection runs again, whole."""

        def unit(conn: Any) -> None:
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE stock SET quantity = quantity - %s WHERE sku = %s AND quantity >= %s",
                    (quantity, sku, quantity),
                )
                if cur.rowcount != 1:
                    raise ValueError(f"not enough {sku} in stock")
                cur.execute("INSERT INTO orders VALUES (%s, %s, %s)", (order_id, sku, quantity))

        def applied(conn: Any) -> bool:
            # Asked only when a COMMIT's reply was lost: did the order go in?
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM orders WHERE id = %s", (order_id,))
                (found,) = cur.fetchone()
            conn.commit()
            return bool(found)

        if isinstance(self._conn, resilient_dbapi.ResilientConnection):
            try:
                resilient_dbapi.run_transaction(self._conn, unit, already_applied=applied)
            except resilient_dbapi.OutcomeUnknownError:
                self._conn.rollback()  # acknowledged: the connection serves the next request
                raise
        else:  # the plain driver: one attempt
            self._conn.begin()
            try:
                unit(self._conn)
            except BaseException:
                self._conn.rollback()
                raise
            self._conn.commit()

    def stock(self, sku: str) -> int:
        with self._conn.cursor() as cur:
            cur.execute("SELECT quantity FROM stock WHERE sku = %s", (sku,))
            (quantity,) = cur.fetchone()
        self._conn.commit()  # end the read's transaction (autocommit is off)
        return int(quantity)

    def orders(self) -> list[str]:
        with self._conn.cursor() as cur:
            cur.execute("SELECT id FROM orders ORDER BY id")
            ids = [row[0] for row in cur.fetchall()]
        self._conn.commit()
        return ids

    def close(self) -> None:
        self._conn.close()
