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
        counts = {"count": len(self.votes), "need": self._need()}
        await self.channel.broadcast("voteskip", counts, where=lambda m: self.channel.may(m, "viewvoteskip"))

    def reset(self) -> None:
        """A media change clears every vote."""
        self.votes.clear()

    async def unvote(self, member: Member) -> None:
        if member.ip in self.votes:
            self.votes.discard(member.ip)
            await self.send_counts()

    async def on_voteskip(self, member: Member, data: Any = None) -> None:
        channel = self.channel
        if not channel.options.get("allow_voteskip") or not channel.may(member, "voteskip"):
            return
        if channel.playlist.current is None or member.ip in self.votes:
            return  # nothing to skip, or a repeat vote: silent
        self.votes.add(member.ip)
        await self.send_counts()
        need = self._need()
        if len(self.votes) < max(1, need):
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
        await channel.playlist.play_next()
