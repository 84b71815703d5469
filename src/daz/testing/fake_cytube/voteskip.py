"""Voteskip with CyTube 3.86's rules (protocol notes §5 "Voteskip"): votes keyed by IP, ``voteskip
{count, need}`` to rank >= viewvoteskip, the skip once ``count >= max(1, need)``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from daz.testing.fake_cytube.records import now_ms

if TYPE_CHECKING:
    from daz.testing.fake_cytube.channel import FakeChannel
    from daz.testing.fake_cytube.members import Member


class Voteskip:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel
        self.votes: set[str] = set()  # voter IPs
        self.active = False  # CyTube's voteskip "poll": from the first vote to the next reset

    def _tally(self) -> tuple[int, int, int, int]:
        """(eligible, total, afk, no permission) over the logged-in users."""
        users = self.channel.users()
        afk = sum(1 for u in users if u.afk)
        no_perm = sum(1 for u in users if not u.afk and not self.channel.may(u, "voteskip"))
        return len(users) - afk - no_perm, len(users), afk, no_perm

    def _need(self) -> int:
        ratio = float(self.channel.options.get("voteskip_ratio", 0.5))
        return math.ceil(self._tally()[0] * ratio)

    async def send_counts(self) -> None:
        """``voteskip {count, need}`` to rank >= viewvoteskip; ``need`` here is not raised to 1, and
        without an open vote it is ``{0, 0}`` (voteskip.js sendVoteskipData)."""
        counts = {"count": len(self.votes), "need": self._need()} if self.active else {"count": 0, "need": 0}
        await self.channel.broadcast("voteskip", counts, where=lambda m: self.channel.may(m, "viewvoteskip"))

    def reset(self) -> None:
        """A media change clears every vote (the ``{0, 0}`` goes out with the changeMedia frames)."""
        self.votes.clear()
        self.active = False

    async def unvote(self, member: Member) -> None:
        """A voter's vote goes when it goes AFK or leaves; nothing is sent here (see ``update``)."""
        self.votes.discard(member.ip)

    async def user_left(self, member: Member) -> None:
        if not self.active:
            return
        await self.unvote(member)
        await self.update()

    async def update(self) -> None:
        """voteskip.js update: silent without an open vote or with an empty playlist; else the skip
        (whisper, ``{0, 0}``, next item) once ``count >= max(1, need)``, or the new counts."""
        channel = self.channel
        if not channel.options.get("allow_voteskip") or not self.active or not channel.playlist.items:
            return
        if len(self.votes) < max(1, self._need()):
            await self.send_counts()
            return
        eligible, total, afk, no_perm = self._tally()
        ratio = float(channel.options.get("voteskip_ratio", 0.5))
        await channel.broadcast(
            "chatMsg",
            {
                "username": "[voteskip]",
                "msg": f"Voteskip passed: {len(self.votes)}/{eligible} skipped; eligible voters: "
                f"{eligible} = total ({total}) - AFK ({afk}) - no permission ({no_perm}); ratio = {ratio:g}",
                "meta": {"addClass": "server-whisper", "addClassToNameAndTimestamp": True},
                "time": now_ms(),
            },
        )
        self.reset()
        await self.send_counts()
        await channel.playlist.play_next()

    async def on_voteskip(self, member: Member, data: Any = None) -> None:
        """A vote opens the count (even on an empty playlist, where it stays silent); a repeat from the
        same IP is silent; the voter stops being AFK (measured on 3.86: no ``voteskip`` frame before
        the pass — the passing vote gets the whisper and ``{0, 0}`` only)."""
        channel = self.channel
        if not channel.options.get("allow_voteskip") or not channel.may(member, "voteskip"):
            return
        self.active = True
        if member.ip in self.votes:
            return
        self.votes.add(member.ip)
        await channel.moderation.set_afk(member, False)
        await self.update()
