"""The user directory in a real SQLite store: changes, push subscriptions, Telegram codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tradewire.channels.directory import PushSubscription
from tradewire.channels.preferences import OptOut, QuietHours
from tradewire.ingest.rebuild import rebuild_projections
from tradewire.projections import all_projectors
from tradewire.store.sqlite import SqliteStore, open_store
from tradewire.users import (
    ProfileChange,
    StoreDirectory,
    add_push_subscription,
    issue_telegram_code,
    list_profiles,
    redeem_telegram_code,
    update_profile,
)
from tradewire.users.view import profile_view

SUB = PushSubscription(endpoint="https://push.example/abc", p256dh="BPk", auth="au")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await open_store(tmp_path, "os", projectors=all_projectors()) as opened:
        yield opened


async def test_changes_merge_and_empty_strings_clear(store: SqliteStore) -> None:
    await update_profile(store, "alice", ProfileChange(email="a@x.io", timezone="Europe/Rome"))
    profile = await update_profile(
        store,
        "alice",
        ProfileChange(quiet_hours="22:00-07:00", opt_outs=["ORDER_PLACED:TELEGRAM", "*:EMAIL"]),
    )
    assert profile.email == "a@x.io" and profile.timezone == "Europe/Rome"
    assert profile.quiet_hours == QuietHours.parse("22:00-07:00")
    assert profile.opt_outs == (OptOut("ORDER_PLACED", "TELEGRAM"), OptOut("*", "EMAIL"))
    cleared = await update_profile(store, "alice", ProfileChange(email="", quiet_hours=""))
    assert cleared.email == "" and cleared.quiet_hours is None
    assert cleared.opt_outs == profile.opt_outs
    assert await StoreDirectory(store).profile("nobody") is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (ProfileChange(email="not an address"), "email"),
        (ProfileChange(discord_webhook_url="ftp://x"), "discord_webhook_url"),
        (ProfileChange(timezone="Mars/Olympus"), "timezone"),
        (ProfileChange(quiet_hours="late"), "quiet_hours"),
        (ProfileChange(opt_outs=["ORDER_EATEN:EMAIL"]), "opt_outs"),
        (ProfileChange(opt_outs=["ORDER_FILLED:PIGEON"]), "opt_outs"),
        (ProfileChange(opt_outs=["*:ACTIVE_SESSION"]), "opt_outs"),
    ],
)
async def test_invalid_changes_name_their_field_and_store_nothing(
    store: SqliteStore, change: ProfileChange, field: str
) -> None:
    with pytest.raises(ValueError) as caught:
        await update_profile(store, "alice", change)
    assert caught.value.args[0] == field
    assert await store.count("users") == 0


async def test_push_subscriptions_are_idempotent_and_removable(store: SqliteStore) -> None:
    await add_push_subscription(store, "alice", SUB)
    await add_push_subscription(store, "alice", SUB)
    directory = StoreDirectory(store)
    profile = await directory.profile("alice")
    assert profile is not None and profile.push_subscriptions == (SUB,)
    assert await store.count("users") == 1
    await directory.remove_push_subscription("alice", SUB.endpoint)
    assert await directory.profile("alice") is None


async def test_a_telegram_code_links_a_chat_once(store: SqliteStore) -> None:
    code = await issue_telegram_code(store, "alice")
    assert await redeem_telegram_code(store, "WRONG", "42") is None
    assert await redeem_telegram_code(store, code.lower(), "42") == "alice"
    assert await redeem_telegram_code(store, code, "43") is None  # used
    profile = await StoreDirectory(store).profile("alice")
    assert profile is not None and profile.telegram_chat_id == "42"


async def test_views_mask_credentials(store: SqliteStore) -> None:
    url = "https://discord.com/api/webhooks/123/SECRET-TOKEN"
    await update_profile(store, "alice", ProfileChange(discord_webhook_url=url))
    await add_push_subscription(store, "alice", SUB)
    (profile,) = await list_profiles(store)
    view = profile_view(profile)
    assert view["discord_webhook_url"] == "https://discord.com/***"
    assert "SECRET" not in repr(profile) and "SECRET" not in str(view)
    assert view["push_subscriptions"] == ["https://push.example/***"]


async def test_rebuild_gives_the_same_directory(tmp_path: Path) -> None:
    async with await open_store(tmp_path, "os", projectors=all_projectors()) as store:
        await update_profile(
            store, "alice", ProfileChange(email="a@x.io", quiet_hours="01:00-02:00")
        )
        await add_push_subscription(store, "bob", SUB)
        code = await issue_telegram_code(store, "bob")
        await redeem_telegram_code(store, code, "7")
        before = [profile_view(p) for p in await list_profiles(store)]
    report = rebuild_projections(tmp_path, all_projectors())
    assert report.refused == 0 and report.replayed == 4
    async with await open_store(tmp_path, "os", projectors=all_projectors()) as store:
        assert [profile_view(p) for p in await list_profiles(store)] == before


async def test_one_lookup_reads_the_document_and_every_subscription_in_order(
    store: SqliteStore,
) -> None:
    later = PushSubscription(endpoint="https://push.example/zzz", p256dh="BPz", auth="zz")
    await update_profile(store, "alice", ProfileChange(email="a@x.io", timezone="Europe/Rome"))
    await add_push_subscription(store, "alice", SUB)
    await add_push_subscription(store, "alice", later)
    bobs = PushSubscription(endpoint="https://push.example/bob", p256dh="BPb", auth="bb")
    await add_push_subscription(store, "bob", bobs)
    profile = await StoreDirectory(store).profile("alice")
    assert profile is not None
    assert (profile.email, profile.timezone) == ("a@x.io", "Europe/Rome")
    assert profile.push_subscriptions == (SUB, later)
    only_subs = await StoreDirectory(store).profile("bob")
    assert only_subs is not None and only_subs.email == ""
    assert only_subs.push_subscriptions == (bobs,)


async def test_a_cached_directory_reuses_a_lookup_for_its_window(store: SqliteStore) -> None:
    from tradewire.delivery.ports import ManualClock

    clock = ManualClock(1_000)
    cached = StoreDirectory(store, cache_ms=1_000, clock=clock)
    assert await cached.profile("alice") is None
    await update_profile(store, "alice", ProfileChange(email="a@x.io"))
    assert await cached.profile("alice") is None  # within the window: the cached absence
    clock.advance(1_000)
    found = await cached.profile("alice")
    assert found is not None and found.email == "a@x.io"
    await add_push_subscription(store, "alice", SUB)
    await cached.remove_push_subscription("alice", SUB.endpoint)  # drops the cached entry
    again = await cached.profile("alice")
    assert again is not None and again.push_subscriptions == ()


async def test_the_cache_answers_without_io_only_while_it_was_checked_recently(
    store: SqliteStore,
) -> None:
    from tradewire.channels.directory import UNKNOWN
    from tradewire.delivery.ports import ManualClock

    clock = ManualClock(1_000)
    cached = StoreDirectory(store, cache_ms=1_000, clock=clock)
    assert cached.cached("alice") is UNKNOWN  # never asked
    assert await cached.profile("alice") is None
    assert cached.cached("alice") is None  # known absent, without I/O
    assert cached.cached("bob") is UNKNOWN  # not loaded yet
    clock.advance(1_000)
    assert cached.cached("alice") is UNKNOWN  # the check is too old
    await update_profile(store, "carol", ProfileChange(email="c@x.io"))
    assert await cached.profile("bob") is None  # revalidates: the users stream moved
    assert cached.cached("alice") is UNKNOWN  # so the whole cache was dropped
    found = await cached.profile("carol")
    assert found is not None and cached.cached("carol") == found
    clock.advance(1_000)
    assert await cached.profile("bob") is None  # nothing changed: the entries stay
    assert cached.cached("carol") == found
