"""The login and kick taxonomy: CyTube's exact strings → outcome → decision (pure)."""

from __future__ import annotations

import pytest

from daz.config import CytubeConfig
from daz.cytube.outcomes import Action, Outcome, classify_kick, classify_login_error, decide

CONFIG = CytubeConfig(login_failure_retry_seconds=600, kick_rejoin_delay_seconds=30)


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("Duplicate login", Outcome.DUPLICATE_LOGIN),
        ("Too many connections from your IP address", Outcome.SOCKET_CAP),
        ("You are banned from this channel.", Outcome.BANNED),
        ("You're banned!", Outcome.BANNED),
        ("Attempted setOptions as a non-moderator", Outcome.ADMIN_ACTION_KICK),
        ("Attempted assignLeader as a non-moderator", Outcome.ADMIN_ACTION_KICK),
        ("", Outcome.MODERATOR_KICK),
        ("stop spamming", Outcome.MODERATOR_KICK),
    ],
)
def test_kick_reasons(reason: str, outcome: Outcome) -> None:
    assert classify_kick(reason) is outcome


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("Guest logins are restricted to one per IP address per 60 seconds.", Outcome.GUEST_WINDOW),
        ("That name is already in use on this channel.", Outcome.GUEST_NAME_CLASH),
        ("That name is already taken", Outcome.GUEST_NAME_CLASH),
        ("That username is registered.", Outcome.GUEST_NAME_CLASH),
        ("That username is reserved.", Outcome.GUEST_NAME_CLASH),
        ("Invalid username/password combination", Outcome.BAD_CREDENTIALS),
        ("User does not exist", Outcome.BAD_CREDENTIALS),
        ("Invalid username.  Usernames must be 1-20 characters long", Outcome.INVALID_NAME),
        ("something new", Outcome.LOGIN_REFUSED),
    ],
)
def test_login_errors(error: str, outcome: Outcome) -> None:
    assert classify_login_error(error) is outcome


def test_wrong_password_stops_on_the_slow_schedule_unless_the_file_changed() -> None:
    stop = decide(Outcome.BAD_CREDENTIALS, "Invalid username/password combination", CONFIG, guest=False)
    assert (stop.action, stop.delay) == (Action.STOP, 600)
    assert "Invalid username/password combination" in stop.reason
    changed = decide(Outcome.BAD_CREDENTIALS, "x", CONFIG, guest=False, password_changed=True)
    assert (changed.action, changed.delay) == (Action.RETRY, 0.0)


def test_ban_stops_without_retry_unless_configured() -> None:
    assert decide(Outcome.BANNED, "You're banned!", CONFIG, guest=True).delay is None
    retrying = CytubeConfig(ban_retry_seconds=3600)
    assert decide(Outcome.BANNED, "You're banned!", retrying, guest=True).delay == 3600


def test_kicks_and_clashes() -> None:
    polite = decide(Outcome.MODERATOR_KICK, "", CONFIG, guest=False)
    assert (polite.action, polite.delay, polite.bug) == (Action.RETRY, 30, False)
    assert "no reason given" in polite.reason
    bug = decide(Outcome.ADMIN_ACTION_KICK, "Attempted setMotd as a non-moderator", CONFIG, guest=False)
    assert (bug.action, bug.bug) == (Action.RETRY, True)
    assert decide(Outcome.SOCKET_CAP, "Too many", CONFIG, guest=False).action is Action.PARK
    clash = decide(Outcome.GUEST_NAME_CLASH, "That name is already in use", CONFIG, guest=True)
    assert (clash.action, clash.new_guest_name) == (Action.RETRY, True)
    # a registered account cannot pick another name: the configured one is refused
    assert decide(Outcome.GUEST_NAME_CLASH, "x", CONFIG, guest=False).action is Action.STOP
    assert decide(Outcome.DUPLICATE_LOGIN, "Duplicate login", CONFIG, guest=False).action is Action.KICKED
    own = decide(Outcome.DUPLICATE_LOGIN, "Duplicate login", CONFIG, guest=False, own_switch=True)
    assert own.action is Action.RETRY
    assert decide(Outcome.LOGIN_REFUSED, "?", CONFIG, guest=False).action is Action.BACK_OFF
