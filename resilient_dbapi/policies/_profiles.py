"""Policy profiles: TOML files naming the policies of a connection.

A profile says what it keeps: either it names every policy's section (``enabled = false``
in one drops that policy), or it starts with ``extends = "<profile>"`` and names only
what differs. A file that leaves a policy out without saying so is refused, so a typo
or an empty file cannot give a proxy without checks or retries.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import Policy

__all__ = ["ProfileError", "load", "profile_names"]

_SECTIONS = {
    "ping_on_checkout": ("PingOnCheckout", {"idle", "timeout", "skip_recent"}),
    "max_age": ("MaxAge", {"seconds", "jitter", "follow_wait_timeout"}),
    "retry_on_error": (
        "RetryOnError",
        {"attempts", "deadline", "backoff", "max_backoff", "resend"},
    ),
    "dead_peer_timeout": ("DeadPeerTimeout", {"seconds"}),
    "replay_transaction": ("ReplayTransaction", {"max_statements", "max_bytes", "max_seconds"}),
}
_OPT_IN = frozenset({"replay_transaction"})
"""Sections of policies that are off unless written (a profile leaving one out drops it)."""
_LISTED = ", ".join(f"[{s}]" for s in _SECTIONS)
_UNBOUNDED = {"retry_on_error": ("attempts", "deadline")}
"""The keys that may be "none" (no limit: the other one bounds the retries)."""
_HOW = (
    'To keep the defaults for what it does not write, begin it with extends = "default" '
    "(or another profile's name or path); to keep a policy with its own defaults, write "
    "its section, even empty; to drop one, write enabled = false in its section"
)

_Spec = dict[str, dict[str, Any] | None]
"""A resolved profile: each section's arguments, or None for a dropped policy."""


class ProfileError(ValueError):
    """A policy profile is missing or malformed; the message names the file and the key."""


PROFILES = Path(__file__).resolve().parent / "profiles"


def profile_names() -> list[str]:
    """The names of the profiles that ship with resilient_dbapi."""
    return sorted(p.stem for p in PROFILES.glob("*.toml"))


def _path_of(name_or_path: str | os.PathLike[str], base: Path | None = None) -> Path:
    """A shipped profile's file by name, or the path given (relative to ``base``, the
    folder of the profile that extends it, if any)."""
    text = os.fspath(name_or_path)
    if text and os.sep not in text and "/" not in text and not text.endswith(".toml"):
        path = PROFILES / f"{text}.toml"
        if not path.is_file():
            raise ProfileError(
                f"no policy profile named {text!r}; the profiles are: "
                f"{', '.join(profile_names())} (or give the path of a .toml file)"
            )
        return path
    return Path(text) if base is None else base / text


def load(name_or_path: str | os.PathLike[str]) -> list[Policy]:
    """The policies of a profile: a shipped profile's name (``"web"``, ``"batch"``,
    ``"strict"``, ``"paranoid"``, ``"default"``; for clusters ``"galera"``,
    ``"replicated"``, ``"postgres_streaming"``, ``"behind_proxy"``) or the path of a
    ``.toml`` file.

    Each section ``[ping_on_checkout]``, ``[max_age]``, ``[retry_on_error]`` and
    ``[dead_peer_timeout]`` gives its policy's arguments; ``enabled = false`` in one
    drops that policy. ``[replay_transaction]`` is opt-in: written (even empty), it turns
    verified transaction replay on. A top-level ``extends = "<name or path>"`` takes the sections
    not written (and the keys not written in a section) from that profile; without it
    every section must be there.
    """
    spec = _resolve(_path_of(name_or_path), ())
    return [_build(section, values) for section, values in spec.items() if values is not None]


def _build(section: str, values: dict[str, Any]) -> Policy:
    from . import DeadPeerTimeout, MaxAge, PingOnCheckout, ReplayTransaction, RetryOnError

    classes: dict[str, Any] = {
        "ReplayTransaction": ReplayTransaction,
        "PingOnCheckout": PingOnCheckout,
        "MaxAge": MaxAge,
        "RetryOnError": RetryOnError,
        "DeadPeerTimeout": DeadPeerTimeout,
    }
    policy: Policy = classes[_SECTIONS[section][0]](**values)
    return policy


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"policy profile {str(path)!r} cannot be read: {exc.strerror}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"policy profile {str(path)!r} is not valid TOML: {exc}") from exc


def _resolve(path: Path, chain: tuple[Path, ...]) -> _Spec:
    """The sections of the profile at ``path``, its ``extends`` chain followed."""
    where = f"policy profile {str(path)!r}"
    resolved = path.resolve()
    if resolved in chain:
        names = " -> ".join(str(p) for p in (*chain, resolved))
        raise ProfileError(f"{where} extends itself: {names}")
    data = _read(path)
    if not data:
        raise ProfileError(
            f"{where} is empty: it would give a connection no checks and no retries. {_HOW}"
        )
    parent = data.pop("extends", None)
    if parent is not None and (not isinstance(parent, str) or not parent):
        raise ProfileError(
            f"{where}: extends must be a profile's name ({', '.join(profile_names())}) "
            f"or the path of a .toml file, got {parent!r}"
        )
    written = {section: _section(where, section, values) for section, values in data.items()}
    missing = [s for s in _SECTIONS if s not in written and s not in _OPT_IN]
    if parent is None and missing:
        raise ProfileError(
            f"{where} leaves out {', '.join(f'[{s}]' for s in missing)} without saying "
            f"whether to keep or drop {'it' if len(missing) == 1 else 'them'}. {_HOW}"
        )
    base: _Spec = {}
    if parent is not None:
        try:
            parent_path = _path_of(parent, path.parent)
        except ProfileError as exc:
            raise ProfileError(f"{where}: extends = {parent!r}: {exc}") from None
        base = _resolve(parent_path, (*chain, resolved))
    spec: _Spec = {}
    for section in _SECTIONS:
        if section not in written:
            spec[section] = base.get(section)  # an opt-in policy not written: off
            continue
        arguments = written[section]
        if arguments is not None:
            # The keys written replace the inherited ones; the rest are kept.
            arguments = {**(base.get(section) or {}), **arguments}
            unbounded = _UNBOUNDED.get(section, ())
            if unbounded and all(k in arguments and arguments[k] is None for k in unbounded):
                raise ProfileError(
                    f'{where}, section [{section}]: {" and ".join(unbounded)} are both "none" '
                    "(a key not written here comes from the profile extended): retries "
                    "must end, so give one of them a number"
                )
            try:
                _build(section, arguments)
            except (TypeError, ValueError) as exc:
                raise ProfileError(f"{where}, section [{section}]: {exc}") from exc
        spec[section] = arguments
    return spec


def _section(where: str, section: str, values: object) -> dict[str, Any] | None:
    """The arguments a section writes; None if it drops its policy."""
    if section not in _SECTIONS:
        raise ProfileError(
            f"{where}: unknown section [{section}]; allowed: {_LISTED} and, before them, "
            "extends = <profile>"
        )
    if not isinstance(values, dict):
        raise ProfileError(
            f"{where}: {section} must be a table: [{section}] with its keys, or with "
            "enabled = false to drop the policy"
        )
    keys = _SECTIONS[section][1]
    unknown = sorted(set(values) - keys - {"enabled"})
    if unknown:
        hint = (
            " (extends goes before the first [section]: TOML puts a key after a header "
            "inside that section)"
            if "extends" in unknown
            else ""
        )
        raise ProfileError(
            f"{where}: unknown key {section}.{unknown[0]}; allowed: "
            f"{', '.join(sorted(keys | {'enabled'}))}{hint}"
        )
    enabled = values.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ProfileError(f"{where}: {section}.enabled must be true or false, got {enabled!r}")
    arguments = {k: v for k, v in values.items() if k != "enabled"}
    for key in _UNBOUNDED.get(section, ()):
        value = arguments.get(key)
        if isinstance(value, str) and value.lower() == "none":  # TOML has no null
            arguments[key] = None
    if not enabled:
        if arguments:
            raise ProfileError(
                f"{where}: [{section}] has enabled = false and also "
                f"{', '.join(sorted(arguments))}: a dropped policy takes no arguments"
            )
        return None
    return arguments
