"""CyTube's name rules and the exact refusal texts (measured on CyTube 3.86, read in its user.js)."""

from __future__ import annotations

import re

CHANNEL_NAME = re.compile(r"^[\w-]{1,30}$")
USER_NAME = re.compile(r"^[\w-]{1,20}$")
RESERVED_NAMES = frozenset({"admin", "owner", "administrator"})

INVALID_CHANNEL_MSG = (
    "Invalid channel name.  Channel names may consist of 1-30 characters in the set a-z, A-Z, 0-9, -, and _"
)
INVALID_CHANNEL_KICK = "Invalid channel name"
INVALID_USERNAME = (
    "Invalid username.  Usernames must be 1-20 characters long and consist only of characters "
    "a-z, A-Z, 0-9, -, or _."
)
GUEST_RESTRICTED = "Guest logins are restricted to one per IP address per {window} seconds."
NAME_RESERVED = "That username is reserved."
NAME_REGISTERED = "That username is registered."
NAME_IN_USE = "That name is already in use on this channel."
NO_SUCH_USER = "User does not exist"
BAD_PASSWORD = "Invalid username/password combination"  # noqa: S105 - a message, not a secret


def valid_channel_name(name: object) -> bool:
    # \w in Python matches Unicode letters, as JavaScript's does not; CyTube accepts ASCII only.
    return isinstance(name, str) and name.isascii() and CHANNEL_NAME.match(name) is not None


def valid_user_name(name: str) -> bool:
    return name.isascii() and USER_NAME.match(name) is not None


def sanitize_text(text: str) -> str:
    """CyTube's XSS.sanitizeText (chat, poll texts, queueFail messages): & < > " ' ( ) as entities."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
        .replace("(", "&#40;")
        .replace(")", "&#41;")
    )
