"""Policy profiles: TOML files naming the policies of a connection."""

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
}


class ProfileError(ValueError):
    """A policy profile is missing or malformed; the message names the file and the key."""


PROFILES = Path(__file__).resolve().parent / "profiles"


def profile_names() -> list[str]:
    """The names of the profiles that ship with resilient_dbapi."""
    return sorted(p.stem for p in PROFILES.glob("*.toml"))


def _path_of(name_or_path: str | os.PathLike[str]) -> Path:
    text = os.fspath(name_or_path)
    if text and os.sep not in text and "/" not in text and not text.endswith(".toml"):
        path = PROFILES / f"{text}.toml"
        if not path.is_file():
            raise ProfileError(
                f"no policy profile named {text!r}; the profiles are: "
                f"{', '.join(profile_names())} (or give the path of a .toml file)"
            )
        return path
    return Path(text)


def load(name_or_path: str | os.PathLike[str]) -> list[Policy]:
    """The policies of a profile: a shipped profile's name (``"web"``, ``"batch"``,
    ``"strict"``, ``"paranoid"``, ``"default"``) or the path of a ``.toml`` file.

    Each of the sections ``[ping_on_checkout]``, ``[max_age]`` and ``[retry_on_error]``
    that is present adds that policy, with the section's keys as its arguments.
    """
    from . import MaxAge, PingOnCheckout, RetryOnError

    path = _path_of(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"policy profile {str(path)!r} cannot be read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"policy profile {str(path)!r} is not valid TOML: {exc}") from exc
    classes: dict[str, Any] = {
        "PingOnCheckout": PingOnCheckout,
        "MaxAge": MaxAge,
        "RetryOnError": RetryOnError,
    }
    policies: list[Policy] = []
    for section, values in data.items():
        if section not in _SECTIONS:
            raise ProfileError(
                f"policy profile {str(path)!r}: unknown section [{section}]; "
                f"allowed: {', '.join(f'[{s}]' for s in _SECTIONS)}"
            )
        class_name, keys = _SECTIONS[section]
        if not isinstance(values, dict):
            raise ProfileError(f"policy profile {str(path)!r}: {section} must be a table")
        unknown = sorted(set(values) - keys)
        if unknown:
            raise ProfileError(
                f"policy profile {str(path)!r}: unknown key {section}.{unknown[0]}; "
                f"allowed: {', '.join(sorted(keys))}"
            )
        try:
            policies.append(classes[class_name](**values))
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"policy profile {str(path)!r}, section [{section}]: {exc}") from exc
    return policies
