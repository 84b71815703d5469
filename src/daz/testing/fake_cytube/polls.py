"""Polls with CyTube 3.86's rules (protocol notes §4): votes keyed by IP, obscured counts shown as
``"?"`` (or ``"N?"`` to viewers with ``viewhiddenpoll``), ``updatePoll`` only when a vote changes."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daz.testing.fake_cytube.names import sanitize_text

if TYPE_CHECKING:
    from daz.testing.fake_cytube.channel import FakeChannel
    from daz.testing.fake_cytube.members import Member

MAX_OPTIONS = 50
_URL = re.compile(r"(https?://[^\s<>\"]+)")


def _linkify(text: str) -> str:
    escaped = sanitize_text(text)
    return _URL.sub(r'<a href="\1" target="_blank" rel="noopener noreferer">\1</a>', escaped)


@dataclass
class PollState:
    title: str  # as sent (raw)
    options: list[str]
    initiator: str
    obscured: bool
    retain_votes: bool = False
    counts: list[int] = field(default_factory=list)
    votes: dict[str, int] = field(default_factory=dict)  # ip -> option
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * len(self.options)

    def pack(self, show_hidden: bool) -> dict[str, Any]:
        counts: list[Any] = list(self.counts)
        if self.obscured:
            counts = [f"{c}?" if show_hidden else "?" for c in self.counts]
        return {
            "title": _linkify(self.title),
            "options": [_linkify(o) for o in self.options],
            "counts": counts,
            "initiator": self.initiator,
            "timestamp": self.timestamp,
        }

    def vote(self, ip: str, option: int) -> bool:
        """True when the vote changed anything (then the server sends ``updatePoll``)."""
        if not 0 <= option < len(self.options) or self.votes.get(ip) == option:
            return False
        self.unvote(ip)
        self.votes[ip] = option
        self.counts[option] += 1
        return True

    def unvote(self, ip: str) -> bool:
        old = self.votes.pop(ip, None)
        if old is None:
            return False
        self.counts[old] -= 1
        return True


def validate(title: Any, options: Any) -> str | None:
    if not isinstance(title, str):
        return "Poll title must be a string."
    if len(title) > 255:
        return "Poll title must be no more than 255 characters long."
    if not isinstance(options, list):
        return "Poll options must be an array."
    if len(options) > MAX_OPTIONS:
        return f"Polls are limited to a maximum of {MAX_OPTIONS} options."
    for option in options:
        if not isinstance(option, str):
            return "Poll options must be strings."
        if not 1 <= len(option) <= 255:
            return "Poll options must be 1-255 characters long."
    return None


class Polls:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel
        self.poll: PollState | None = None
        self._timer: asyncio.TimerHandle | None = None

    def _sees_hidden(self, member: Member) -> bool:
        return self.channel.may(member, "viewhiddenpoll")

    async def _broadcast(self, event: str) -> None:
        poll = self.poll
        if poll is not None:
            await self.channel.broadcast_each(event, lambda m: poll.pack(self._sees_hidden(m)))

    async def send_poll(self, member: Member) -> None:
        if self.poll is not None:
            await self.channel.send(member, "newPoll", self.poll.pack(self._sees_hidden(member)))

    async def open(
        self,
        member: Member,
        title: str,
        options: list[str],
        *,
        obscured: bool,
        timeout: float | None = None,
        retain_votes: bool = False,
    ) -> None:
        self.stop_timer()
        if self.poll is not None:
            await self.channel.broadcast("closePoll")  # any open poll is closed first
        self.poll = PollState(title, options, member.name or "", obscured, retain_votes)
        await self._broadcast("newPoll")
        if timeout is not None:
            loop = asyncio.get_running_loop()
            poll = self.poll
            self._timer = loop.call_later(timeout, self._timed_out, poll)

    def _timed_out(self, poll: PollState) -> None:
        self._timer = None
        if self.poll is poll:
            self.channel.server.spawn(self.close(), "fake_cytube.poll_timeout")

    def stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def close(self) -> None:
        poll = self.poll
        if poll is None:
            return
        if poll.obscured:
            poll.obscured = False
            await self.channel.broadcast("updatePoll", poll.pack(True))
        self.stop_timer()
        await self.channel.broadcast("closePoll")
        self.poll = None

    # handlers --------------------------------------------------------------------------------------
    async def on_new_poll(self, member: Member, data: dict[str, Any]) -> dict[str, Any] | None:
        if not self.channel.may(member, "pollctl"):
            return None
        error = validate(data["title"], data["opts"])
        timeout = data.get("timeout")
        if error is None and timeout is not None and not 1 <= timeout <= 86400:
            error = "Poll timeout must be between 1 and 86400 seconds"
        if error is not None:
            await self.channel.send(member, "errorMsg", {"msg": error})
            return {"error": {"message": error}}
        await self.open(
            member,
            data["title"],
            list(data["opts"]),
            obscured=data["obscured"],
            timeout=timeout,
            retain_votes=bool(data.get("retainVotes")),
        )
        return {}

    async def on_vote(self, member: Member, data: dict[str, Any]) -> None:
        option = data["option"]
        if not self.channel.may(member, "pollvote") or self.poll is None or not float(option).is_integer():
            return
        if self.poll.vote(member.ip, int(option)):
            await self._broadcast("updatePoll")

    async def on_close_poll(self, member: Member, data: Any = None) -> None:
        if self.channel.may(member, "pollctl"):
            await self.close()

    async def command(self, member: Member, msg: str, *, obscured: bool) -> None:
        """``/poll Title,opt1,opt2`` (``/hpoll``: obscured); the title keeps its leading space."""
        if not self.channel.may(member, "pollctl"):
            return
        title, *options = re.sub(r"^/h?poll", "", msg).split(",")
        error = validate(title, options)
        if error is not None:
            await self.channel.send(member, "errorMsg", {"msg": f"Error creating poll: {error}"})
            return
        await self.open(member, title, options, obscured=obscured)

    async def user_left(self, member: Member) -> None:
        if self.poll is not None and not self.poll.retain_votes and self.poll.unvote(member.ip):
            await self._broadcast("updatePoll")
