"""The fallback for any other PEP 249 driver: the weakest mode.

Without a driver adapter resilient_dbapi knows only PEP 249: the exception classes, and
``SELECT 1`` as a ping. An ``OperationalError`` or ``InterfaceError`` counts as "the
connection is dead" (it may also be a deadlock: then the caller sees an error it would
have seen anyway); no error proves a statement was never sent, so only plain reads are
sent again; autocommit is assumed off unless the connection has a boolean ``autocommit``,
so after any write the connection counts as inside a transaction, and when that
connection is lost the caller hears that the writes' outcome is unknown (never that they
were rolled back, which is true only if the guess was). Nothing is checked before a
statement except by the idle ping, which has no time limit.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from typing import Any

from ..error_kinds import GENERIC_ERRORS, Code
from .base import AdapterBase, Liveness

__all__ = ["GenericAdapter"]

_PEP249 = (
    "IntegrityError",
    "ProgrammingError",
    "DataError",
    "NotSupportedError",
    "InternalError",
    "OperationalError",
    "InterfaceError",
    "DatabaseError",
    "Error",
)
_cache: dict[type, GenericAdapter | None] = {}


def _alive() -> Liveness:
    return Liveness.ALIVE


def _exceptions(raw: object) -> dict[str, type[Exception]] | None:
    """The PEP 249 exception classes of ``raw``'s driver: from the connection (PEP 249's
    optional extension) or from the driver's top-level module."""
    # A proxy posing as the driver's class (``raw.__class__``) lives in another module.
    for klass in dict.fromkeys((type(raw), raw.__class__)):
        module = sys.modules.get(klass.__module__.split(".")[0])
        found = {}
        for name in _PEP249:
            cls = getattr(raw, name, None) or getattr(module, name, None)
            if not (isinstance(cls, type) and issubclass(cls, Exception)):
                break
            found[name] = cls
        else:
            return found
    return None


class GenericAdapter(AdapterBase):
    errors = GENERIC_ERRORS
    gone_code: Code = "InterfaceError"
    connect_timeout_argument: str | None = None  # an unknown driver: not known

    def __init__(self, connection_class: type, exceptions: dict[str, type[Exception]]):
        self.connection_class = connection_class
        self.exceptions = exceptions
        self.name = f"{connection_class.__module__.split('.')[0]} (generic)"
        self.operational_error = exceptions["OperationalError"]
        self.interface_error = exceptions["InterfaceError"]
        self.programming_error = exceptions["ProgrammingError"]

    @classmethod
    def for_connection(cls, raw: object) -> GenericAdapter | None:
        """The fallback for ``raw``'s class; None if it is not a sync DB-API connection."""
        klass = type(raw)
        if klass not in _cache:
            exceptions = _exceptions(raw)
            commit = getattr(klass, "commit", None)
            if exceptions is None or inspect.iscoroutinefunction(commit):
                _cache[klass] = None  # no PEP 249 classes, or an asyncio driver
            else:
                _cache[klass] = cls(klass, exceptions)
        return _cache[klass]

    def owns(self, raw: object) -> bool:
        return isinstance(raw, self.connection_class)

    def owns_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self.exceptions["Error"])

    def make_error(self, cls: type[Exception], code: Any, message: str) -> Exception:
        return cls(message)

    def error_code(self, exc: BaseException) -> str | None:
        for name in _PEP249:
            if isinstance(exc, self.exceptions[name]):
                return name
        return None

    def never_sent(self, exc: BaseException) -> bool:
        return False

    def probe(self, raw: Any) -> Any:
        return _alive

    def status(self, raw: Any) -> tuple[bool, bool]:
        autocommit = getattr(raw, "autocommit", False)
        return False, autocommit is True

    def knows_autocommit(self, raw: Any) -> bool:
        """Only a boolean ``autocommit`` attribute says; otherwise PEP 249's default (off)
        is a guess, and a lost "transaction" may have committed write by write."""
        return isinstance(getattr(raw, "autocommit", None), bool)

    def ping(self, raw: Any, timeout: float) -> None:
        self.execute(raw, "SELECT 1", None)

    def completion_chains(self, raw: Any) -> bool:
        return False  # an unknown server's dialect: MySQL's completion_type is not assumed

    def table_rolls_back(self, raw: Any, database: str, name: str) -> bool:
        return False  # an unknown server's catalogue is not read: not provable

    def last_insert_id(self, raw: Any) -> None:
        return None  # no such history: a question about it is refused on a new session

    def wait_timeout(self, raw: Any) -> None:
        return None

    def execute(self, raw: Any, query: str, args: Any) -> None:
        cursor = raw.cursor()
        try:
            cursor.execute(query) if args is None else cursor.execute(query, args)
            with contextlib.suppress(Exception):  # a statement without rows
                cursor.fetchall()
        finally:
            cursor.close()

    def set_autocommit(self, raw: Any, value: bool) -> None:
        if callable(getattr(raw, "autocommit", None)):
            raw.autocommit(value)
        else:
            raw.autocommit = value

    def select_db(self, raw: Any, db: str) -> None:
        raise self.exceptions["NotSupportedError"](
            f"select_db() is not part of PEP 249 and {self.name} has no adapter for it"
        )
