"""The asyncio proxy: ``await resilient_dbapi.aio.connect(aiomysql.connect, ...)``.

The same engine, policies and safety rules as the sync proxy, with the driver's
asyncio surface (``await conn.cursor()``, ``await cur.execute(...)``, ``async with``).
A statement cancelled in flight leaves its connection abandoned: the cancellation
propagates, a transaction with writes is reported lost at the next statement, and the
next statement outside a transaction gets a new connection.
"""

from ._connection_async import AsyncResilientConnection, connect, creator
from ._cursor_async import AsyncResilientCursor
from ._transaction_async import run_transaction

__all__ = [
    "AsyncResilientConnection",
    "AsyncResilientCursor",
    "connect",
    "creator",
    "run_transaction",
]
