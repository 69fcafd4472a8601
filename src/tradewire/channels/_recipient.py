"""Finding a recipient: the directory lookup every channel starts with."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from tradewire.channels.directory import Unknown, UserDirectory, UserProfile, cached_profile
from tradewire.delivery.ports import PermanentFailure, Retryable
from tradewire.errors import TradewireError

__all__ = [
    "find_profile",
    "find_url",
    "host_allowed",
    "known_profile",
    "parse_allowed_hosts",
    "url_problem",
]


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """``webhook_allowed_hosts`` as rules: ``"discord.com, .slack.com"`` -> two rules.

    A rule is a host name or address, matched exactly, or ``.domain``, which
    matches the domain and every name under it. Case and a trailing dot do
    not matter. No rules: any host is allowed.
    """
    return tuple(rule.strip().lower().rstrip(".") for rule in text.split(",") if rule.strip(" ."))


def host_allowed(host: str, rules: tuple[str, ...]) -> bool:
    """Whether ``host`` passes ``rules`` (:func:`parse_allowed_hosts`); no rules: yes."""
    if not rules:
        return True
    host = host.lower().rstrip(".")
    for rule in rules:
        if rule.startswith("."):
            if host == rule[1:] or host.endswith(rule):
                return True
        elif host == rule:
            return True
    return False


async def find_profile(
    directory: UserDirectory, user_id: str
) -> UserProfile | Retryable | PermanentFailure:
    """The user's profile; an unknown user is permanent, a failing directory retryable."""
    try:
        profile = await directory.profile(user_id)
    except TradewireError as exc:
        return Retryable(f"user directory unavailable: {type(exc).__name__}")
    if profile is None:
        return PermanentFailure(f"unknown user {user_id!r}")
    return profile


def known_profile(
    directory: UserDirectory, user_id: str
) -> UserProfile | PermanentFailure | Unknown:
    """:func:`find_profile` without I/O: ``UNKNOWN`` when the directory must be asked."""
    found = cached_profile(directory, user_id)
    if found is None:
        return PermanentFailure(f"unknown user {user_id!r}")
    return found


def url_problem(
    url: str, what: str, allowed_hosts: tuple[str, ...] = ()
) -> PermanentFailure | None:
    """Why ``url`` cannot be posted to (not http(s), no host, a host not allowed).

    The message never shows the URL (it is the credential); a refused host
    is named, with the setting that refuses it.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return PermanentFailure(f"{what} is not a valid URL")
    if parts.scheme not in ("http", "https") or not host:
        return PermanentFailure(f"{what} must be an http(s) URL")
    if not host_allowed(host, allowed_hosts):
        return PermanentFailure(
            f"{what} points at {host}, which the operator's webhook_allowed_hosts does not "
            "list: add the host there, or set a URL on an allowed host"
        )
    return None


async def find_url(
    directory: UserDirectory,
    user_id: str,
    pick: Callable[[UserProfile], str],
    what: str,
    allowed_hosts: tuple[str, ...] = (),
) -> tuple[UserProfile, str] | Retryable | PermanentFailure:
    """The user's profile and the URL ``pick`` chooses from it, or why there is none.

    ``what`` names the address in messages: ``"user has no {what}"``,
    ``"the {what} URL must be an http(s) URL"``; the URL itself never appears.
    """
    profile = await find_profile(directory, user_id)
    if not isinstance(profile, UserProfile):
        return profile
    url = pick(profile)
    if not url:
        return PermanentFailure(f"user has no {what}")
    return url_problem(url, f"the {what} URL", allowed_hosts) or (profile, url)
