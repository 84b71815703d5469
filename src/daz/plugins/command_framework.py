"""The command framework for plugins: register ``!commands``, the framework does the rest.

    router = CommandRouter(ctx, prefix="!")
    router.add(Command("add", add_handler, "queue a video", args=(Arg("type"), Arg("id")),
                       min_rank=1, user_cooldown=5))
    router.attach()          # in setup(): subscribes to cytube.chat and cytube.pm through ctx

For each chat line or PM that names one of the router's commands, the framework skips replayed
backlog lines and the bot's own echoes, looks the caller's rank up in the channel replica
(``caller_rank``: one function, used everywhere), applies the rank gate and the per-user and
per-room cooldowns (``command_spec.decide``, pure), parses the arguments (a usage error is answered
with the command's usage), runs the handler and sends its reply: in chat or by PM as the command
says, and always by PM when the command came by PM. Every plugin's commands are kept in the
shared ``ctx.commands`` registry, so ``!help`` (the built-in ``commands`` plugin) lists exactly the
commands the caller may run, whichever plugin registered them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daz.errors import DazError
from daz.events.bus import Event
from daz.plugins.base import PluginContext, event_fields
from daz.plugins.command_spec import (
    GUEST_RANK,
    Arg,
    Command,
    CommandConflict,
    CommandHandler,
    CommandRegistry,
    Cooldowns,
    Decision,
    Registered,
    ReplyMode,
    UsageError,
    Verdict,
    decide,
    help_text,
    parse_arguments,
    split_command,
)

__all__ = [
    "Arg", "Caller", "Command", "CommandConflict", "CommandHandler", "CommandRegistry", "CommandRouter",
    "Invocation", "RankLookup", "Registered", "UsageError", "caller_rank", "help_text",
]

RankLookup = Callable[[str, str], float | None]
DENIAL_REPLY_SECONDS = 30.0  # a caller below a command's rank is told so at most this often


def caller_rank(ctx: PluginContext, room: str, user: str) -> float:
    """The CyTube rank of ``user`` in ``room`` from the channel replica.

    The one place a command's caller is ranked. A user the replica does not know (no replica yet,
    or a PM from someone who left) counts as a guest: privileged commands fail closed.
    """
    state = ctx.channel(room)
    found = state.user(user) if state is not None else None
    return GUEST_RANK if found is None else found.rank


@dataclass(frozen=True, slots=True)
class Caller:
    """Who called, where, and how (``via`` chat or PM)."""

    room: str
    user: str
    via: ReplyMode = "chat"
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Invocation:
    """One accepted call of a command, handed to its handler."""

    router: CommandRouter
    command: Command
    caller: Caller
    rank: float
    args: dict[str, Any]

    @property
    def ctx(self) -> PluginContext:
        return self.router.ctx

    @property
    def room(self) -> str:
        return self.caller.room

    @property
    def user(self) -> str:
        return self.caller.user

    async def reply(self, text: str) -> None:
        """Answer the caller: by PM if the command came by PM or is a PM command, else in chat."""
        await self.router.send(self.caller, text, self.reply_mode)

    @property
    def reply_mode(self) -> ReplyMode:
        return "pm" if self.caller.via == "pm" else self.command.reply


class CommandRouter:
    """One plugin's commands under one prefix. Build in ``setup``; ``attach`` subscribes."""

    def __init__(self, ctx: PluginContext, *, prefix: str = "!", rank_of: RankLookup | None = None) -> None:
        self.ctx = ctx
        self.prefix = prefix
        self.cooldowns = Cooldowns()
        self.answered = 0
        self.refused = 0
        self._rank_of = rank_of
        self._denied_at: dict[tuple[str, str, str, str], float] = {}

    def add(self, command: Command) -> Command:
        self.ctx.commands.add(command, self.prefix, self.ctx.name)
        return command

    def command(
        self, name: str, summary: str = "", **options: Any
    ) -> Callable[[CommandHandler], CommandHandler]:
        """Decorator form of ``add``: ``@router.command("skip", "skip the video", min_rank=2)``."""

        def register(handler: CommandHandler) -> CommandHandler:
            self.add(Command(name, handler, summary, **options))
            return handler

        return register

    def attach(self) -> None:
        self.ctx.subscribe("cytube.chat", self.on_event)
        self.ctx.subscribe("cytube.pm", self.on_event)

    def rank(self, room: str, user: str) -> float:
        if self._rank_of is not None:
            found = self._rank_of(room, user)
            return GUEST_RANK if found is None else found
        return caller_rank(self.ctx, room, user)

    async def on_event(self, event: Event) -> None:
        fields = event_fields(event)
        if fields.get("backlog") or fields.get("own"):
            return
        via: ReplyMode = "pm" if event.name == "cytube.pm" else "chat"
        parsed = split_command(str(fields.get("msg") or ""), self.prefix)
        room, user = str(fields.get("room") or ""), str(fields.get("username") or "")
        if parsed is None or not room or not user:
            return
        entry = self.ctx.commands.lookup(self.prefix, parsed[0])
        if entry is None or entry.owner != self.ctx.name:
            return  # not ours: another plugin's router answers it
        await self.dispatch(entry.command, Caller(room, user, via, event.correlation_id), parsed[1])

    async def dispatch(self, command: Command, caller: Caller, text: str) -> None:
        now = self.ctx.clock.monotonic()
        room, user = caller.room, caller.user
        rank = self.rank(room, user)
        decision = decide(command, rank, self.cooldowns, room=room, user=user, now=now)
        if decision.verdict is not Verdict.RUN:
            await self._refuse(command, decision, caller, rank, now)
            return
        reply_mode: ReplyMode = "pm" if caller.via == "pm" else command.reply
        try:
            args = parse_arguments(command, text, self.prefix)
        except UsageError as exc:
            # Parsed before the cooldowns start: a caller who mistypes and corrects at once is
            # served (a call that never ran must not hold them or the room back). The usage reply
            # is throttled like a rank refusal, so repeating a wrong call cannot make the bot flood.
            self.refused += 1
            self.ctx.log.info("commands.failed", room=room, command=command.name, user=user,
                              error=type(exc).__name__)
            if self._may_tell(("usage", room, user.lower(), command.name), now):
                await self.send(caller, str(exc), reply_mode)
            return
        self.cooldowns.start(command, room, user, now)
        try:
            result = command.handler(Invocation(self, command, caller, rank, args))
            reply = await result if not isinstance(result, str | None) else result
        except DazError as exc:
            # A usage error, or a refused action (permission, validation): the caller is told why.
            # Anything else is a bug in the handler and crashes the plugin (ctx.subscribe).
            self.refused += 1
            self.ctx.log.info("commands.failed", room=room, command=command.name, user=user,
                              error=type(exc).__name__)
            await self.send(caller, str(exc), reply_mode)
            return
        self.answered += 1
        self.ctx.log.info("commands.answered", room=room, command=command.name, user=user)
        if reply:
            await self.send(caller, reply, reply_mode)

    async def _refuse(self, command: Command, decision: Decision, caller: Caller, rank: float,
                      now: float) -> None:
        self.refused += 1
        if decision.verdict is Verdict.COOLING_DOWN:
            return  # silence: answering every early repeat would be the flood the cooldown prevents
        if not self._may_tell(("rank", caller.room, caller.user.lower(), command.name), now):
            return
        await self.send(caller, f"{self.prefix}{command.name} needs rank {command.min_rank:g} "
                        f"(you have {rank:g})", "pm")

    def _may_tell(self, key: tuple[str, str, str, str], now: float) -> bool:
        """Whether a refusal (rank or usage) may be answered: once per key per DENIAL_REPLY_SECONDS."""
        last = self._denied_at.get(key)
        if last is not None and now - last < DENIAL_REPLY_SECONDS:
            return False
        if len(self._denied_at) > 1000:
            self._denied_at = {k: t for k, t in self._denied_at.items() if now - t < DENIAL_REPLY_SECONDS}
        self._denied_at[key] = now
        return True

    async def send(self, caller: Caller, text: str, mode: ReplyMode) -> None:
        rooms = self.ctx.rooms
        if rooms is None:
            return
        if mode == "pm":
            await rooms.send_pm(caller.room, caller.user, text, correlation_id=caller.correlation_id)
        else:
            await rooms.send_chat(caller.room, text, correlation_id=caller.correlation_id)

    def help_for(self, room: str, user: str) -> str:
        """``!help``: every plugin's commands the caller may run."""
        return help_text(self.ctx.commands.usable_by(self.rank(room, user)))
