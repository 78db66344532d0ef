"""The sync proxy is generated from the asyncio source: it must be current, and the
generator must do what it says."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("async_to_sync", ROOT / "tools/async_to_sync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("async_to_sync", module)
    spec.loader.exec_module(module)
    return module


def test_generated_sync_files_are_current() -> None:
    tool = _tool()
    for source, target in tool.PAIRS.items():
        assert (ROOT / target).read_text() == tool.generated(source, target), (
            f"{target} is out of date: run `python tools/async_to_sync.py`"
        )


def test_transform_removes_async_and_keeps_the_sync_branch() -> None:
    source = textwrap.dedent(
        '''\
        import time

        if True:  # ASYNC
            import asyncio


        class AsyncResilientCursor:
            """An AsyncResilientCursor."""

            async def fetch(self, f: Callable[..., Awaitable[list[int]]]) -> list[int]:
                return await (await f()).rows  # AsyncResilientCursor

            if True:  # ASYNC

                async def __aenter__(self) -> AsyncResilientCursor:
                    await asyncio.sleep(0)
                    return self

            else:

                def wait(self) -> None:
                    time.sleep(0)

            async def close(self) -> None:
                async with self._lock:
                    pass
        '''
    )
    expected = textwrap.dedent(
        '''\
        import time


        class ResilientCursor:
            """An ResilientCursor."""

            def fetch(self, f: Callable[..., list[int]]) -> list[int]:
                return (f()).rows  # ResilientCursor

            def wait(self) -> None:
                time.sleep(0)

            def close(self) -> None:
                with self._lock:
                    pass
        '''
    )
    assert _tool().transform(source) == expected


def test_transform_refuses_asyncio_left_outside_a_marked_block() -> None:
    import pytest

    source = "async def f() -> None:\n    await asyncio.sleep(1)\n"
    with pytest.raises(ValueError, match="asyncio"):
        _tool().transform(source)
    misspelt = "if True:  # async\n    import asyncio\n"
    with pytest.raises(ValueError, match="asyncio"):
        _tool().transform(misspelt)
