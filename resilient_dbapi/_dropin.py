"""What the drop-in modules share."""

from __future__ import annotations

import os
from typing import Any

POLICY_ENV = "RESILIENT_DBAPI_POLICY"
"""The environment variable that names the drop-ins' (and dialects') profile."""

# Deep enough for a tracing wrapper around a patched function; bounded so a cycle of
# __wrapped__ attributes cannot hang a connect.
_MAX_WRAPPERS = 8


def driver_connect(found: Any, ours: Any, original: Any) -> Any:
    """The driver's connect to call: ``found`` (the module's attribute, read at call
    time so a tracing wrapper installed later, such as OpenTelemetry's, is kept), unless
    the caller patched the driver's module with the drop-in's own ``ours`` (directly,
    under a wrapper, or in a ``functools.partial``): then ``original``, the driver's
    connect as it was at import, since calling ``found`` would call ``ours`` again
    without end."""
    probe = found
    for _ in range(_MAX_WRAPPERS):
        if probe is ours:
            return original
        # A decorator's __wrapped__, functools.partial's func, a bound method's __func__.
        for name in ("__wrapped__", "func", "__func__"):
            inner = getattr(probe, name, None)
            if inner is not None:
                probe = inner
                break
        else:
            break
    return found


def chosen_policies(policies: Any) -> Any:
    """``policies`` as given, else the profile named by $RESILIENT_DBAPI_POLICY, else
    None (the defaults)."""
    if policies is not None:
        return policies
    return os.environ.get(POLICY_ENV) or None
