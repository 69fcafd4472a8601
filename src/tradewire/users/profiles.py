"""User profiles as records of the ``users`` stream, projected to query tables.

Theory of operation
-------------------
Like API keys, every change to the directory is a record (``profile_set``
with the fields that change, ``push_subscribed`` / ``push_removed``,
``telegram_code_issued`` / ``telegram_linked``), so it is durable, survives
``tradewire rebuild`` and can be written by the CLI while the gateway runs.
:class:`UsersProjector` merges profile changes into one JSON document per
user (``user_profiles.doc``) and keeps ``push_subscriptions`` and
``telegram_link_codes``. :class:`StoreDirectory` is the
:class:`~tradewire.channels.directory.UserDirectory` the channels read.

Validation happens before a record is written (:meth:`ProfileChange.validate`):
the projector trusts the stream.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Sequence
from typing import Any, Final, Protocol

import msgspec

from tradewire.channels._recipient import url_problem
from tradewire.channels.directory import UNKNOWN, PushSubscription, Unknown, UserProfile
from tradewire.channels.preferences import OptOut, QuietHours, zone
from tradewire.delivery.model import ChannelType
from tradewire.delivery.ports import Clock, SystemClock
from tradewire.store import AppendResult, Record, Refusal, SqlExecutor, StoredRecord
from tradewire.wire import EventType

__all__ = [
    "USERS_STREAM",
    "ProfileChange",
    "StoreDirectory",
    "UsersProjector",
    "add_push_subscription",
    "issue_telegram_code",
    "list_profiles",
    "redeem_telegram_code",
    "update_profile",
]

USERS_STREAM: Final = "users"
_CODE_TTL_MS: Final = 15 * 60_000
_CACHE_LIMIT: Final = 100_000
_TABLES: Final = ("user_profiles", "push_subscriptions", "telegram_link_codes", "telegram_chats")
_ADDRESS_FIELDS: Final = (
    "email",
    "telegram_chat_id",
    "discord_webhook_url",
    "slack_webhook_url",
    "webhook_url",
    "apprise_url",
    "webhook_secret",
)


class DirectoryStore(Protocol):
    """What the directory needs of a store: appends and read queries."""

    async def append(self, record: Record) -> AppendResult:
        """Store a record durably."""
        ...

    async def query(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query."""
        ...


class ProfileChange(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The fields of a profile to change; ``None`` leaves a field as it is.

    An empty string clears an address; ``quiet_hours=""`` clears quiet hours.
    ``opt_outs`` replaces the whole list (``"EVENT_TYPE:CHANNEL"`` items, ``*``
    for any).
    """

    email: str | None = None
    telegram_chat_id: str | None = None
    discord_webhook_url: str | None = None
    slack_webhook_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    apprise_url: str | None = None
    timezone: str | None = None
    display_name: str | None = None
    quiet_hours: str | None = None
    opt_outs: list[str] | None = None

    def validate(self, allowed_hosts: tuple[str, ...] = ()) -> tuple[str, str] | None:
        """``(field, message)`` of the first invalid value, or ``None``."""
        if self.email and ("@" not in self.email or any(c.isspace() for c in self.email)):
            return "email", f"not an email address: {self.email!r}"
        for name in ("discord_webhook_url", "slack_webhook_url", "webhook_url"):
            value = getattr(self, name)
            refused = url_problem(value, name, allowed_hosts) if value else None
            if refused is not None:  # not http(s), no host, or a host not allowed
                return name, refused.error
        if self.timezone is not None:
            try:
                zone(self.timezone)
            except ValueError as exc:
                return "timezone", str(exc)
        if self.quiet_hours:
            try:
                QuietHours.parse(self.quiet_hours)
            except ValueError as exc:
                return "quiet_hours", str(exc)
        for item in self.opt_outs or ():
            problem = _opt_out_problem(item)
            if problem:
                return "opt_outs", problem
        return None


def _opt_out_problem(item: str) -> str | None:
    event_type, _, channel = item.partition(":")
    channel = channel or "*"
    if event_type != "*" and event_type not in EventType.__members__:
        return f"unknown event type {event_type!r} in opt-out {item!r}"
    if channel != "*" and channel not in ChannelType.__members__:
        return f"unknown channel {channel!r} in opt-out {item!r}"
    if channel == ChannelType.ACTIVE_SESSION.name:
        return "ACTIVE_SESSION is not a channel one can opt out of"
    return None


class _ProfileSet(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    change: ProfileChange


class _PushSubscribed(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    endpoint: str
    p256dh: str
    auth: str


class _PushRemoved(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    endpoint: str


class _CodeIssued(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    code_sha256: str
    expires_at_ms: int


class _TelegramLinked(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    code_sha256: str
    chat_id: str


class UsersProjector:
    """Keeps the directory tables in step with the ``users`` stream."""

    streams: frozenset[str] = frozenset({USERS_STREAM})

    def apply(self, db: SqlExecutor, record: StoredRecord) -> Refusal | None:
        """Apply one directory change."""
        kind, body, at = record.kind, record.body, record.created_at_ms
        if kind == "profile_set":
            change = msgspec.json.decode(body, type=_ProfileSet)
            _merge_profile(db, change.user_id, msgspec.to_builtins(change.change), at)
        elif kind == "push_subscribed":
            sub = msgspec.json.decode(body, type=_PushSubscribed)
            db.execute(
                "INSERT INTO push_subscriptions (endpoint, user_id, p256dh, auth, created_at_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (endpoint) DO UPDATE SET "
                "user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth",
                (sub.endpoint, sub.user_id, sub.p256dh, sub.auth, at),
            )
        elif kind == "push_removed":
            gone = msgspec.json.decode(body, type=_PushRemoved)
            db.execute(
                "DELETE FROM push_subscriptions WHERE endpoint = ? AND user_id = ?",
                (gone.endpoint, gone.user_id),
            )
        elif kind == "telegram_code_issued":
            code = msgspec.json.decode(body, type=_CodeIssued)
            db.execute(
                "INSERT INTO telegram_link_codes (code_sha256, user_id, expires_at_ms) "
                "VALUES (?, ?, ?) ON CONFLICT (code_sha256) DO NOTHING",
                (code.code_sha256, code.user_id, code.expires_at_ms),
            )
        elif kind == "telegram_linked":
            linked = msgspec.json.decode(body, type=_TelegramLinked)
            db.execute(
                "UPDATE telegram_link_codes SET used_at_ms = ? WHERE code_sha256 = ?",
                (at, linked.code_sha256),
            )
            _merge_profile(db, linked.user_id, {"telegram_chat_id": linked.chat_id}, at)
        return None

    def reset(self, db: SqlExecutor) -> None:
        """Empty the directory tables."""
        for table in _TABLES:
            db.execute(f"DELETE FROM {table}")


def _merge_profile(db: SqlExecutor, user_id: str, fields: dict[str, Any], at_ms: int) -> None:
    if "telegram_chat_id" in fields:
        _link_chat(db, user_id, str(fields["telegram_chat_id"] or ""))
    row = db.execute("SELECT doc FROM user_profiles WHERE user_id = ?", (user_id,)).fetchone()
    doc: dict[str, Any] = msgspec.json.decode(row[0]) if row else {}
    doc.update(fields)
    db.execute(
        "INSERT INTO user_profiles (user_id, doc, updated_at_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (user_id) DO UPDATE SET doc = excluded.doc, "
        "updated_at_ms = excluded.updated_at_ms",
        (user_id, msgspec.json.encode(doc).decode(), at_ms),
    )


def _link_chat(db: SqlExecutor, user_id: str, chat_id: str) -> None:
    """One chat belongs to one user, and a user has one linked chat."""
    db.execute("DELETE FROM telegram_chats WHERE user_id = ? OR chat_id = ?", (user_id, chat_id))
    if chat_id:
        db.execute(
            "INSERT INTO telegram_chats (chat_id, user_id) VALUES (?, ?)", (chat_id, user_id)
        )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _record(kind: str, user_id: str, body: msgspec.Struct, key: str | None = None) -> Record:
    return Record(
        stream=USERS_STREAM,
        key=key or f"{kind}:{uuid.uuid4()}",
        body=msgspec.json.encode(body),
        kind=kind,
        created_at_ms=_now_ms(),
        user_id=user_id,
    )


async def update_profile(
    store: DirectoryStore,
    user_id: str,
    change: ProfileChange,
    allowed_hosts: tuple[str, ...] = (),
) -> UserProfile:
    """Validate and store ``change``; returns the profile after it.

    ``allowed_hosts``: the ``webhook_allowed_hosts`` rules the webhook URLs
    must pass (none: any host). Raises ``ValueError`` with
    ``args == (field, message)`` for an invalid value.
    """
    problem = change.validate(allowed_hosts)
    if problem is not None:
        raise ValueError(*problem)
    await store.append(_record("profile_set", user_id, _ProfileSet(user_id=user_id, change=change)))
    profile = await StoreDirectory(store).profile(user_id)
    assert profile is not None
    return profile


async def add_push_subscription(
    store: DirectoryStore, user_id: str, subscription: PushSubscription
) -> None:
    """Register a browser's Web Push subscription for ``user_id`` (idempotent)."""
    body = _PushSubscribed(
        user_id=user_id,
        endpoint=subscription.endpoint,
        p256dh=subscription.p256dh,
        auth=subscription.auth,
    )
    digest = hashlib.sha256(subscription.endpoint.encode()).hexdigest()
    await store.append(_record("push_subscribed", user_id, body, key=f"push:{user_id}:{digest}"))


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


async def issue_telegram_code(store: DirectoryStore, user_id: str) -> str:
    """A one-time code the user sends to the bot as ``/start CODE`` (15 minutes)."""
    code = secrets.token_hex(4).upper()
    body = _CodeIssued(
        user_id=user_id, code_sha256=_code_hash(code), expires_at_ms=_now_ms() + _CODE_TTL_MS
    )
    await store.append(_record("telegram_code_issued", user_id, body))
    return code


async def redeem_telegram_code(store: DirectoryStore, code: str, chat_id: str) -> str | None:
    """Link ``chat_id`` to the user who holds ``code``; the user id, or ``None`` if invalid."""
    digest = _code_hash(code)
    rows = await store.query(
        "SELECT user_id FROM telegram_link_codes "
        "WHERE code_sha256 = ? AND used_at_ms IS NULL AND expires_at_ms > ?",
        (digest, _now_ms()),
    )
    if not rows:
        return None
    user_id = str(rows[0][0])
    body = _TelegramLinked(user_id=user_id, code_sha256=digest, chat_id=chat_id)
    await store.append(_record("telegram_linked", user_id, body, key=f"tg-link:{digest}"))
    return user_id


_VERSION_SQL = "SELECT max(seq) FROM records WHERE stream = ?"
"""The newest change of any profile: the directory cache is valid while it stays."""
_PROFILE_SQL = (
    "SELECT 0, doc, NULL, NULL, NULL, NULL FROM user_profiles WHERE user_id = ? "
    "UNION ALL "
    "SELECT 1, NULL, endpoint, p256dh, auth, created_at_ms FROM push_subscriptions "
    "WHERE user_id = ? "
    "ORDER BY 1, 6, 3"
)
"""The profile document (part 0), then the push subscriptions oldest first (part 1)."""


class StoreDirectory:
    """The :class:`~tradewire.channels.directory.UserDirectory` backed by the store.

    With ``cache_ms`` profiles (and absences) are kept, and the whole cache
    is revalidated at most every ``cache_ms`` with one query: the newest
    ``seq`` of the ``users`` stream, which every profile change appends to.
    Unchanged, every entry stays valid; changed, the cache is dropped. A
    change made elsewhere (the CLI is another process) so shows after at
    most ``cache_ms`` (the gateway uses one second), and a burst of events
    for many users costs one query per second, not one per user.
    :meth:`cached` answers without I/O while the last check is that recent
    (channels use it to skip users they cannot reach, see
    :mod:`tradewire.channels.gate`).
    """

    def __init__(
        self, store: DirectoryStore, *, cache_ms: int = 0, clock: Clock | None = None
    ) -> None:
        self.store = store
        self.cache_ms = cache_ms
        self._clock = clock or SystemClock()
        self._cache: dict[str, UserProfile | None] = {}
        self._version: int | None = None
        self._checked_at = -(1 << 62)

    def cached(self, user_id: str) -> UserProfile | Unknown | None:
        """The profile (``None``: no such user) if known without I/O, else ``UNKNOWN``."""
        if self.cache_ms <= 0 or self._clock.now_ms() - self._checked_at >= self.cache_ms:
            return UNKNOWN
        return self._cache.get(user_id, UNKNOWN)

    async def profile(self, user_id: str) -> UserProfile | None:
        """The user's profile, or ``None`` when nothing is known of them."""
        if self.cache_ms <= 0:
            return await self._load(user_id)
        now = self._clock.now_ms()
        if now - self._checked_at >= self.cache_ms:
            rows = await self.store.query(_VERSION_SQL, (USERS_STREAM,))
            version = rows[0][0] if rows else None
            if version != self._version:
                self._cache.clear()
                self._version = version
            self._checked_at = now
        hit = self._cache.get(user_id, UNKNOWN)
        if not isinstance(hit, Unknown):
            return hit
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        profile = await self._load(user_id)
        self._cache[user_id] = profile
        return profile

    async def _load(self, user_id: str) -> UserProfile | None:
        # One query, one trip to a reader thread: every channel attempt asks this.
        rows = await self.store.query(_PROFILE_SQL, (user_id, user_id))
        docs = [row[1] for row in rows if row[0] == 0]
        subs = tuple(PushSubscription(*row[2:5]) for row in rows if row[0] == 1)
        if not docs and not subs:
            return None
        doc: dict[str, Any] = msgspec.json.decode(docs[0]) if docs else {}
        return _profile(user_id, doc, subs)

    async def user_of_chat(self, chat_id: str) -> str | None:
        """The user whose linked Telegram chat is ``chat_id``, or ``None``."""
        rows = await self.store.query(
            "SELECT user_id FROM telegram_chats WHERE chat_id = ?", (chat_id,)
        )
        return str(rows[0][0]) if rows else None

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> None:
        """Forget a subscription the push service said is gone."""
        body = _PushRemoved(user_id=user_id, endpoint=endpoint)
        await self.store.append(_record("push_removed", user_id, body))
        self._cache.pop(user_id, None)


def _profile(user_id: str, doc: dict[str, Any], subs: tuple[PushSubscription, ...]) -> UserProfile:
    quiet = doc.get("quiet_hours") or None
    return UserProfile(
        user_id=user_id,
        **{name: str(doc.get(name) or "") for name in _ADDRESS_FIELDS},
        push_subscriptions=subs,
        timezone=str(doc.get("timezone") or "UTC"),
        display_name=str(doc.get("display_name") or ""),
        opt_outs=tuple(_opt_out(item) for item in doc.get("opt_outs") or ()),
        quiet_hours=QuietHours.parse(quiet) if quiet else None,
    )


def _opt_out(item: str) -> OptOut:
    event_type, _, channel = item.partition(":")
    return OptOut(event_type or "*", channel or "*")


async def list_profiles(store: DirectoryStore) -> list[UserProfile]:
    """Every profile in the directory, by user id."""
    ids = await store.query(
        "SELECT user_id FROM user_profiles UNION SELECT user_id FROM push_subscriptions ORDER BY 1"
    )
    directory = StoreDirectory(store)
    found = [await directory.profile(str(row[0])) for row in ids]
    return [p for p in found if p is not None]
