"""``webhook_allowed_hosts``: which hosts a user's webhook URL may point at."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire.channels._recipient import host_allowed, parse_allowed_hosts, url_problem
from tradewire.projections import all_projectors
from tradewire.store.sqlite import open_store
from tradewire.users import ProfileChange, update_profile

RULES = parse_allowed_hosts(" discord.com, .slack.com ,127.0.0.1,")


def test_rules_are_parsed_lowercase_without_blanks() -> None:
    assert RULES == ("discord.com", ".slack.com", "127.0.0.1")
    assert parse_allowed_hosts("") == ()
    assert parse_allowed_hosts(" , . ,") == ()


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("discord.com", True),
        ("DISCORD.com.", True),  # case and the root dot do not matter
        ("api.discord.com", False),  # an exact rule: no subdomains
        ("slack.com", True),
        ("hooks.slack.com", True),
        ("a.b.slack.com", True),
        ("evilslack.com", False),  # a suffix rule matches whole labels only
        ("slack.com.evil.io", False),
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("169.254.169.254", False),
        ("localhost", False),
    ],
)
def test_hosts_pass_exact_and_domain_rules(host: str, allowed: bool) -> None:
    assert host_allowed(host, RULES) is allowed


@given(st.text())
def test_no_rules_allow_any_host(host: str) -> None:
    assert host_allowed(host, ())


def test_a_refused_host_is_named_with_the_setting_and_the_url_is_not() -> None:
    url = "https://169.254.169.254/latest/meta-data/secret-token"
    problem = url_problem(url, "the webhook URL", RULES)
    assert problem is not None
    assert "169.254.169.254" in problem.error and "webhook_allowed_hosts" in problem.error
    assert "secret-token" not in problem.error
    assert url_problem("https://hooks.slack.com/services/T/B/x", "the Slack URL", RULES) is None


@pytest.mark.parametrize("field", ["discord_webhook_url", "slack_webhook_url", "webhook_url"])
async def test_a_profile_url_on_a_host_not_allowed_is_refused_by_field(
    tmp_path: Path, field: str
) -> None:
    async with await open_store(tmp_path, "os", projectors=all_projectors()) as store:
        change = ProfileChange(**{field: "http://10.0.0.5:8080/hook"})
        with pytest.raises(ValueError) as caught:
            await update_profile(store, "alice", change, RULES)
        assert caught.value.args[0] == field
        assert "10.0.0.5" in caught.value.args[1]
        assert await store.count("users") == 0
        allowed = ProfileChange(**{field: "https://hooks.slack.com/services/T/B/x"})
        profile = await update_profile(store, "alice", allowed, RULES)
        assert getattr(profile, field) == "https://hooks.slack.com/services/T/B/x"
        # without rules (the default), any http(s) host is taken, as before
        await update_profile(store, "bob", change)
