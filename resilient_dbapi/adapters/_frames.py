"""Where in a driver an exception was raised: told by the frames on its traceback."""

from __future__ import annotations

from collections.abc import Iterator


def raised_in(exc: BaseException, module: str) -> Iterator[str]:
    """The names of the functions of ``module`` that ``exc`` passed through, outermost
    first."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_globals.get("__name__") == module:
            yield frame.f_code.co_name
        tb = tb.tb_next
