"""The command framework's pure core: command specs, argument parsing, cooldowns, the rank gate.

Nothing here does I/O or reads a clock: every decision takes ``now`` and the caller's rank as
arguments, so cooldowns and permissions are tested with plain numbers (or a ``FakeClock``). The
I/O half (subscribing to chat, looking the caller's rank up in the channel replica, replying) is
``daz.plugins.command_framework``.

Ranks are CyTube's: -1 anonymous, 0 guest, 1 registered, 1.5 leader, 2 moderator, 3 admin, 4-5
owner, 255 site admin.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from daz.errors import DazError

if TYPE_CHECKING:
    from daz.plugins.command_framework import Invocation

CommandHandler = Callable[["Invocation"], Awaitable[str | None] | str | None]
ArgKind = Literal["str", "int", "float", "user"]
ReplyMode = Literal["chat", "pm"]

COMMAND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
USER_NAME = re.compile(r"^[\w-]{1,20}$")
GUEST_RANK = 0.0  # the lowest rank a user who can chat has; an unknown caller is treated as this
_PRUNE_AT = 2000


class UsageError(DazError):
    """A command was called with arguments that do not fit its usage; the message says how to call it."""


class CommandConflict(DazError):
    """Two plugins registered the same command name or alias."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One positional argument. ``rest`` takes the remainder of the line (last argument only)."""

    name: str
    kind: ArgKind = "str"
    optional: bool = False
    rest: bool = False
    choices: tuple[str, ...] = ()

    def label(self) -> str:
        inner = "|".join(self.choices) if self.choices else self.name
        inner = f"{inner}..." if self.rest else inner
        return f"[{inner}]" if self.optional else f"<{inner}>"


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command. ``min_rank`` is the CyTube rank the caller needs (0 = any guest)."""

    name: str
    handler: CommandHandler
    help: str
    aliases: tuple[str, ...] = ()
    args: tuple[Arg, ...] = ()
    min_rank: float = GUEST_RANK
    user_cooldown: float = 0.0
    room_cooldown: float = 0.0
    reply: ReplyMode = "chat"

    def __post_init__(self) -> None:
        for word in (self.name, *self.aliases):
            if not COMMAND_NAME.match(word):
                raise ValueError(f"command name {word!r}: use 1-32 of a-z 0-9 _, starting with a letter")
        if self.user_cooldown < 0 or self.room_cooldown < 0:
            raise ValueError(f"command {self.name}: cooldowns must be at least 0 seconds")
        for arg in self.args[:-1]:
            if arg.rest:
                raise ValueError(f"command {self.name}: only the last argument may take the rest of the line")
        seen_optional = False
        for arg in self.args:
            if seen_optional and not arg.optional:
                raise ValueError(f"command {self.name}: argument {arg.name} follows an optional one")
            seen_optional = seen_optional or arg.optional

    @property
    def words(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def usage(self, prefix: str) -> str:
        return " ".join((f"{prefix}{self.name}", *(a.label() for a in self.args)))


def split_command(text: str, prefix: str) -> tuple[str, str] | None:
    """``"!Add yt abc"`` → ``("add", "yt abc")``; None when ``text`` is not a command. Pure."""
    stripped = text.strip()
    if not stripped.startswith(prefix) or len(stripped) == len(prefix):
        return None
    word, _, rest = stripped[len(prefix):].partition(" ")
    if not word or not word.isascii() or not word.replace("_", "").isalnum():
        return None
    return word.lower(), rest.strip()


def parse_arguments(command: Command, text: str, prefix: str) -> dict[str, Any]:
    """Bind ``text`` to ``command.args``; a ``UsageError`` naming the usage when it does not fit. Pure."""
    words = text.split()
    values: dict[str, Any] = {}
    for index, arg in enumerate(command.args):
        if index >= len(words):
            if not arg.optional:
                raise _usage(command, prefix, f"missing {arg.name}")
            values[arg.name] = None
            continue
        raw = " ".join(words[index:]) if arg.rest else words[index]
        values[arg.name] = _convert(command, prefix, arg, raw)
    if len(words) > len(command.args) and not (command.args and command.args[-1].rest):
        raise _usage(command, prefix, f"unexpected {' '.join(words[len(command.args):])!r}")
    return values


def _convert(command: Command, prefix: str, arg: Arg, raw: str) -> Any:
    if arg.choices and raw.lower() not in arg.choices:
        raise _usage(command, prefix, f"{arg.name} must be one of {', '.join(arg.choices)}")
    if arg.choices:
        return raw.lower()
    if arg.kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise _usage(command, prefix, f"{arg.name} must be a whole number, not {raw!r}") from None
    if arg.kind == "float":
        try:
            value = float(raw)
        except ValueError:
            raise _usage(command, prefix, f"{arg.name} must be a number, not {raw!r}") from None
        if not math.isfinite(value):
            raise _usage(command, prefix, f"{arg.name} must be a finite number")
        return value
    if arg.kind == "user" and not USER_NAME.match(raw):
        raise _usage(command, prefix, f"{arg.name} must be a user name (1-20 of letters, digits, - and _)")
    return raw


def _usage(command: Command, prefix: str, problem: str) -> UsageError:
    return UsageError(f"usage: {command.usage(prefix)} ({problem})", retryable=False)


class Cooldowns:
    """Per-user and per-room cooldowns per command. Pure on ``now`` (any monotonic seconds)."""

    def __init__(self) -> None:
        self._until: dict[tuple[str, ...], float] = {}

    def remaining(self, command: Command, room: str, user: str, now: float) -> float:
        """Seconds until ``user`` may run ``command`` in ``room`` again (0 = now)."""
        keys = (("u", command.name, room, user.lower()), ("r", command.name, room))
        return max(0.0, *(self._until.get(k, now) - now for k in keys))

    def start(self, command: Command, room: str, user: str, now: float) -> None:
        if command.user_cooldown > 0:
            self._until[("u", command.name, room, user.lower())] = now + command.user_cooldown
        if command.room_cooldown > 0:
            self._until[("r", command.name, room)] = now + command.room_cooldown
        if len(self._until) > _PRUNE_AT:
            self._until = {k: t for k, t in self._until.items() if t > now}


class Verdict(StrEnum):
    RUN = "run"
    RANK_TOO_LOW = "rank_too_low"
    COOLING_DOWN = "cooling_down"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    wait_seconds: float = 0.0


def decide(command: Command, rank: float, cooldowns: Cooldowns, *, room: str, user: str,
           now: float) -> Decision:
    """Whether ``user`` (of ``rank``) may run ``command`` now. The rank gate comes first so a user
    below the rank learns nothing about the cooldown. Pure."""
    if rank < command.min_rank:
        return Decision(Verdict.RANK_TOO_LOW)
    wait = cooldowns.remaining(command, room, user, now)
    if wait > 0:
        return Decision(Verdict.COOLING_DOWN, wait)
    return Decision(Verdict.RUN)


@dataclass(frozen=True, slots=True)
class Registered:
    command: Command
    prefix: str
    owner: str


@dataclass
class CommandRegistry:
    """Every plugin's commands, shared by the plugin host (``ctx.commands``) so ``!help`` can list
    them all. A name or alias two plugins both claim under the same prefix is a ``CommandConflict``."""

    _entries: dict[tuple[str, str], Registered] = field(default_factory=dict)

    def add(self, command: Command, prefix: str, owner: str) -> None:
        for word in command.words:
            held = self._entries.get((prefix, word))
            if held is not None and held.owner != owner:
                raise CommandConflict(
                    f"plugins.{owner}: command {prefix}{word} is already registered by plugin "
                    f"{held.owner}; choose another name or prefix", retryable=False)
        entry = Registered(command, prefix, owner)
        for word in command.words:
            self._entries[(prefix, word)] = entry

    def remove_owner(self, owner: str) -> None:
        self._entries = {k: e for k, e in self._entries.items() if e.owner != owner}

    def lookup(self, prefix: str, word: str) -> Registered | None:
        return self._entries.get((prefix, word))

    def all(self) -> list[Registered]:
        unique: dict[tuple[str, str], Registered] = {}
        for entry in self._entries.values():
            unique.setdefault((entry.prefix, entry.command.name), entry)
        return sorted(unique.values(), key=lambda e: (e.prefix, e.command.name))

    def usable_by(self, rank: float) -> list[Registered]:
        """The commands a caller of ``rank`` may run (what ``!help`` lists)."""
        return [e for e in self.all() if rank >= e.command.min_rank]


def help_text(entries: Iterable[Registered]) -> str:
    """``commands: !help (list the commands), !add <type> <id> (queue a video)``. Pure."""
    listed = []
    for entry in entries:
        usage = entry.command.usage(entry.prefix)
        listed.append(f"{usage} ({entry.command.help})" if entry.command.help else usage)
    return "commands: " + (", ".join(listed) if listed else "none")
