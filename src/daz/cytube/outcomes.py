"""The login and kick taxonomy: the server's exact replies → an outcome → what the room does. Pure.

CyTube refuses and kicks with fixed English strings (``../shared/cytube-protocol.md``, "Kicks and
refusals"). They are matched here and nowhere else: the supervisor gets an ``Outcome`` and asks
``decide`` what to do, so every reason has one explicit answer instead of a string test scattered
in the code. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from daz.config import CytubeConfig


class Outcome(Enum):
    """Why a session ended or a login was refused, as far as the server said."""

    DUPLICATE_LOGIN = "duplicate_login"  # the account joined from another socket (or our own switch)
    SOCKET_CAP = "socket_cap"  # "Too many connections from your IP address"
    BANNED = "banned"  # banned name or IP, or a moderator's /ban
    MODERATOR_KICK = "moderator_kick"  # a moderator's /kick (their text or none)
    ADMIN_ACTION_KICK = "admin_action_kick"  # we sent an admin action without the rank: our bug
    GUEST_WINDOW = "guest_window"  # one guest login per IP per window
    GUEST_NAME_CLASH = "guest_name_clash"  # the guest name is in use, registered or reserved
    BAD_CREDENTIALS = "bad_credentials"  # wrong password or unknown account
    INVALID_NAME = "invalid_name"  # the server refuses the name itself
    LOGIN_REFUSED = "login_refused"  # any other login refusal: treated as transient
    CHANNEL_PASSWORD = "channel_password"  # noqa: S105 (a name)  needPassword: none configured, or wrong


# Exact strings (CyTube 3.86). Prefixes where the server appends details.
_DUPLICATE_LOGIN = "Duplicate login"
_SOCKET_CAP = "Too many connections from your IP address"
_BANNED = frozenset({"You are banned from this channel.", "You're banned!"})
_ADMIN_ACTION_PREFIX = "Attempted "  # "Attempted setOptions as a non-moderator", setMotd, ...
_GUEST_WINDOW_PREFIX = "Guest logins are restricted"
_NAME_CLASH = (
    "That name is already in use on this channel.",
    "That name is already taken",  # older servers
    "That username is registered.",
    "That username is reserved.",
)
_BAD_CREDENTIALS = frozenset({"Invalid username/password combination", "User does not exist"})
_INVALID_NAME_PREFIX = "Invalid username"


def classify_kick(reason: str) -> Outcome:
    """A ``kick {"reason": …}`` → its outcome; an unknown text is a moderator's own words."""
    text = reason.strip()
    if text == _DUPLICATE_LOGIN:
        return Outcome.DUPLICATE_LOGIN
    if text == _SOCKET_CAP:
        return Outcome.SOCKET_CAP
    if text in _BANNED:
        return Outcome.BANNED
    if text.startswith(_ADMIN_ACTION_PREFIX) and "non-moderator" in text:
        return Outcome.ADMIN_ACTION_KICK
    return Outcome.MODERATOR_KICK


def classify_login_error(error: str) -> Outcome:
    """A ``login {"success": false, "error": …}`` → its outcome."""
    text = error.strip()
    if text.startswith(_GUEST_WINDOW_PREFIX):
        return Outcome.GUEST_WINDOW
    if text.startswith(_NAME_CLASH):
        return Outcome.GUEST_NAME_CLASH
    if text in _BAD_CREDENTIALS:
        return Outcome.BAD_CREDENTIALS
    if text.startswith(_INVALID_NAME_PREFIX):
        return Outcome.INVALID_NAME
    return Outcome.LOGIN_REFUSED


class Action(Enum):
    BACK_OFF = "back_off"  # the ordinary reconnect backoff, attempt charged
    RETRY = "retry"  # reconnect after ``delay`` (may be 0), no attempt charged
    PARK = "park"  # give the socket slot back and wait for one to free
    STOP = "stop"  # STOPPED with the reason; retried after ``delay`` if set, else on restart only
    KICKED = "kicked"  # KICKED: wait for an operator (someone else holds the account)


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    delay: float | None = None
    new_guest_name: bool = False
    bug: bool = False  # log at error level: the caller did something the server refuses


def decide(
    outcome: Outcome,
    detail: str,
    config: CytubeConfig,
    *,
    guest: bool,
    name_configured: bool = False,
    password_changed: bool = False,
    own_switch: bool = False,
) -> Decision:
    """What the room does after ``outcome`` (``detail`` is the server's text, for the reason).

    ``guest``: the login carries no password. ``name_configured``: the name is the operator's
    (``username``), not one daz drew, so a clash cannot be solved by drawing another.
    ``password_changed``: the password file was re-read after a refusal and differs from the one
    just refused, so one immediate retry is worth it. ``own_switch``: a ``Duplicate login`` on a
    socket this process is replacing (make-before-break), i.e. our own doing.
    """
    match outcome:
        case Outcome.DUPLICATE_LOGIN:
            if own_switch:
                return Decision(Action.RETRY, "replaced by our own new session", delay=0.0)
            return Decision(Action.KICKED, f"kicked: {detail}")
        case Outcome.SOCKET_CAP:
            return Decision(Action.PARK, f"kicked: {detail}")
        case Outcome.BANNED:
            return Decision(Action.STOP, f"banned: {detail}", delay=config.ban_retry_seconds)
        case Outcome.ADMIN_ACTION_KICK:
            return Decision(
                Action.RETRY, f"kicked for an admin action without the rank: {detail}",
                delay=config.kick_rejoin_delay_seconds, bug=True,
            )
        case Outcome.MODERATOR_KICK:
            said = detail or "no reason given"
            return Decision(
                Action.RETRY, f"kicked by a moderator: {said}", delay=config.kick_rejoin_delay_seconds
            )
        case Outcome.GUEST_WINDOW:
            # The refusal proves another guest login from this address inside the window (another
            # process, or a restart of ours): the admission gate now waits a whole window.
            return Decision(Action.RETRY, f"login refused: {detail}", delay=0.0)
        case Outcome.GUEST_NAME_CLASH if guest and not name_configured:
            return Decision(Action.RETRY, f"guest name refused: {detail}", delay=0.0, new_guest_name=True)
        case Outcome.GUEST_NAME_CLASH if guest:
            # Our configured guest name is still held (e.g. by our own socket the server has not
            # dropped yet): the ordinary backoff gives the server time to let it go.
            return Decision(Action.BACK_OFF, f"guest name refused: {detail}")
        case Outcome.BAD_CREDENTIALS | Outcome.INVALID_NAME | Outcome.GUEST_NAME_CLASH:
            if password_changed:
                return Decision(Action.RETRY, f"login refused: {detail}; password file changed", delay=0.0)
            return Decision(
                Action.STOP, f"login refused: {detail}", delay=config.login_failure_retry_seconds
            )
        case Outcome.LOGIN_REFUSED:
            return Decision(Action.BACK_OFF, f"login refused: {detail}")
        case Outcome.CHANNEL_PASSWORD:
            # A configuration matter like a wrong account password: each retry costs the server a
            # connection token and changes nothing until an operator acts.
            return Decision(Action.STOP, detail, delay=config.login_failure_retry_seconds)
