"""Moderation with CyTube 3.86's rules (protocol notes §5-6): chat commands, bans, mutes, AFK,
channel ranks, options, permissions and MOTD, including the admin-action kicks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daz.testing.fake_cytube.members import ADMIN_RANK, NO_PAYLOAD, cloak
from daz.testing.fake_cytube.records import BANNED_BY_MODERATOR, now_ms

if TYPE_CHECKING:
    from daz.testing.fake_cytube.channel import FakeChannel
    from daz.testing.fake_cytube.members import Member

MUTED_NOTICE = "You have been muted on this channel."
RANK_FAIL = "Updating user rank failed: "


class Moderation:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel

    async def mod_whisper(self, msg: str, min_rank: float | None) -> None:
        """A ``[server]`` line to users of ``min_rank`` and above (None: the key is absent, nobody)."""
        if min_rank is None:
            return
        line = {
            "username": "[server]",
            "msg": msg,
            "time": now_ms(),
            "meta": {"addClass": "server-whisper", "addClassToNameAndTimestamp": True},
        }
        await self.channel.broadcast("chatMsg", line, where=lambda m: m.rank >= min_rank)

    async def send_user_meta(self, user: Member, min_rank: float | None = None) -> None:
        def build(viewer: Member) -> Any:
            if min_rank is not None and viewer.rank < min_rank:
                return NO_PAYLOAD
            return {"name": user.name, "meta": self.channel.user_entry(user, viewer)["meta"]}

        await self.channel.broadcast_each("setUserMeta", build)

    # chat commands ----------------------------------------------------------------------------------
    async def command(self, member: Member, msg: str) -> bool:
        """Run ``msg`` if it is a command CyTube knows; True when it was one (never broadcast as chat)."""
        word, _, rest = msg.partition(" ")
        handler = {
            "/kick": self._kick,
            "/ban": self._ban,
            "/ipban": self._ipban,
            "/banip": self._ipban,
            "/mute": self._mute,
            "/smute": self._smute,
            "/unmute": self._unmute,
            "/unsmute": self._unmute,
            "/afk": self._afk,
            "/clear": self._clear,
            "/kickanons": self._kickanons,
        }.get(word)
        if word in {"/poll", "/hpoll"}:
            await self.channel.polls.command(member, msg, obscured=word == "/hpoll")
            return True
        if handler is None:
            return False
        await handler(member, rest.strip())
        return True

    async def _kick(self, actor: Member, args: str) -> None:
        if not self.channel.may(actor, "kick"):
            return
        if not args:
            await self._error(
                actor, "No kick target specified.  If you're trying to kick anonymous users, use /kickanons"
            )
            return
        name, _, reason = args.partition(" ")
        target = self.channel.find(name)
        if target is None:
            return
        if target.rank >= actor.rank or target.global_rank > actor.global_rank:
            await self._error(actor, f"You do not have permission to kick {target.name}")
            return
        await self.channel.server.kick_member(target, reason)
        await self.mod_whisper(f"{actor.name} kicked {target.name}", 2)

    async def _kickanons(self, actor: Member, args: str) -> None:
        if not self.channel.may(actor, "kick"):
            return
        for member in [m for m in self.channel.members if m.name is None]:
            await self.channel.server.kick_member(member, "anonymous user")
        await self.mod_whisper(f"{actor.name} kicked anonymous users", 2)

    def _stored_rank_of(self, name: str) -> float:
        online = self.channel.find(name)
        if online is not None:
            return online.rank
        return self.channel.channel_ranks.get(name.lower(), 0.0)

    async def _ban(self, actor: Member, args: str) -> None:
        if not args:
            await self._error(actor, "No ban target specified.")
            return
        name, _, reason = args.partition(" ")
        error = await self.ban_name(actor, name.lower(), reason)
        if error is not None:
            await self._error(actor, error)

    async def ban_name(self, actor: Member, name: str, reason: str) -> str | None:
        channel = self.channel
        if not channel.may(actor, "ban"):
            return "You do not have ban permissions on this channel"
        if name == actor.lower:
            await channel.send(actor, "costanza", {"msg": "You can't ban yourself"})
            return "You cannot ban yourself"
        if self._stored_rank_of(name) >= actor.rank:
            return f"You don't have permission to ban {name}"
        if any(b.ip == "*" and b.name == name for b in channel.bans):
            return f"{name} is already banned"
        channel.add_ban("*", name, reason[:255], actor.name or "")
        await self.mod_whisper(f"{actor.name} namebanned {name}", channel.permissions.get("ban"))
        await self.kick_banned(name, None)
        return None

    async def _ipban(self, actor: Member, args: str) -> None:
        if not args:
            await self._error(actor, "No ban target specified.")
            return
        name, _, rest = args.partition(" ")
        name = name.lower()
        words = rest.split(" ") if rest else []
        if words and words[0] in {"range", "wrange"}:
            words = words[1:]  # the fake bans the exact address either way
        reason = " ".join(words)[:255]
        channel = self.channel
        if not channel.may(actor, "ban"):
            await self._error(actor, "You do not have ban permissions on this channel")
            return
        target = channel.find(name)
        if target is not None and not any(b.ip == target.ip for b in channel.bans):
            if target.rank >= actor.rank:
                await self._error(actor, f"You don't have permission to ban IP {cloak(target.ip)}")
                return
            channel.add_ban(target.ip, name, reason, actor.name or "")
            await self.mod_whisper(
                f"{actor.name} banned {cloak(target.ip)} ({name})", channel.permissions.get("ban")
            )
            await self.kick_banned(name, target.ip)
        if not any(b.ip == "*" and b.name == name for b in channel.bans):
            error = await self.ban_name(actor, name, reason)
            if error is not None:
                await self._error(actor, error)

    async def kick_banned(self, name: str, ip: str | None) -> None:
        for member in list(self.channel.members):
            if member.lower == name or (ip is not None and member.ip == ip):
                await self.channel.server.kick_member(member, BANNED_BY_MODERATOR)

    async def _mute(self, actor: Member, args: str, *, shadow: bool = False) -> None:
        if not self.channel.may(actor, "mute"):
            return
        command = "/smute" if shadow else "/mute"
        target = await self._mute_target(actor, args, command)
        if target is None:
            return
        target.muted = True
        target.smuted = shadow
        need = self.channel.permissions.get("mute")
        if shadow:
            await self.send_user_meta(target, need)
            await self.mod_whisper(f"{actor.name} shadowmuted {target.name}", need)
        else:
            await self.send_user_meta(target)
            await self.mod_whisper(f"{actor.name} muted {target.name}", need)

    async def _smute(self, actor: Member, args: str) -> None:
        await self._mute(actor, args, shadow=True)

    async def _mute_target(self, actor: Member, args: str, command: str) -> Member | None:
        name = args.split(" ", maxsplit=1)[0] if args else ""
        if not name:
            await self._error(actor, f"{command} requires a target name")
            return None
        target = self.channel.find(name)
        if target is None:
            await self._error(actor, f"{command} target {name} not present in channel.")
            return None
        if target.rank >= actor.rank or target.global_rank > actor.global_rank:
            await self._error(actor, f"{command} failed - {target.name} has equal or higher rank than you.")
            return None
        return target

    async def _unmute(self, actor: Member, args: str) -> None:
        if not self.channel.may(actor, "mute"):
            return
        name = args.split(" ", maxsplit=1)[0] if args else ""
        target = self.channel.find(name) if name else None
        if target is actor:
            await self._error(actor, "You are not allowed to unmute yourself")
            return
        if target is None:
            await self._error(actor, f"/unmute target {name} not present in channel.")
            return
        if not target.muted:
            await self._error(actor, f"{target.name} is not muted.")
            return
        target.muted = target.smuted = False
        # Whisper first, then the meta: the reverse of /mute (chat.js handleCmdUnmute; measured on 3.86).
        await self.mod_whisper(f"{actor.name} unmuted {target.name}", self.channel.permissions.get("mute"))
        await self.send_user_meta(target)

    async def _afk(self, actor: Member, args: str) -> None:
        await self.set_afk(actor, not actor.afk)

    async def set_afk(self, member: Member, afk: bool) -> None:
        if member.afk == afk or member.name is None:
            return
        member.afk = afk
        if afk:
            await self.channel.send(member, "clearVoteskipVote")
            await self.channel.voteskip.unvote(member)
        # the eligible count changed: new voteskip counts (if a vote is open) BEFORE the meta (user.js
        # setAFK updates the voteskip, then emits 'afk', on which the channel sends the meta)
        await self.channel.voteskip.update()
        await self.send_user_meta(member)
        await self.channel.broadcast("setAFK", {"name": member.name, "afk": afk})

    async def _clear(self, actor: Member, args: str) -> None:
        if not self.channel.may(actor, "chatclear"):
            return
        await self.channel.broadcast("clearchat", {"clearedBy": actor.name})
        await self.mod_whisper(f"{actor.name} cleared chat.", -1)

    async def _error(self, member: Member, msg: str) -> None:
        await self.channel.send(member, "errorMsg", {"msg": msg})

    # socket events ------------------------------------------------------------------------------------
    async def on_request_banlist(self, member: Member, data: Any = None) -> None:
        """Only to ``ban``-permitted users of a registered channel, else silence; addresses cloaked
        below EFFECTIVE rank 255 (kickban.js sendBanlist compares ``account.effectiveRank``)."""
        if not self.channel.registered or not self.channel.may(member, "ban"):
            return
        show_ip = member.rank >= ADMIN_RANK
        await self.channel.send(
            member,
            "banlist",
            [
                {
                    "id": b.id,
                    "ip": b.ip if b.ip == "*" or show_ip else cloak(b.ip),
                    "name": b.name,
                    "reason": b.reason,
                    "bannedby": b.bannedby,
                }
                for b in self.channel.bans
            ],
        )

    async def on_unban(self, member: Member, data: dict[str, Any]) -> None:
        """Delete by id, then ``banlistRemove`` (the request echoed) to ``ban``-permitted users even when
        no row had that id: CyTube's ``DELETE ... WHERE id=?`` does not check it hit anything."""
        if not self.channel.may(member, "ban"):
            return
        self.channel.bans = [b for b in self.channel.bans if b.id != data["id"]]
        await self.channel.broadcast("banlistRemove", data, where=lambda m: self.channel.may(m, "ban"))
        await self.mod_whisper(f"{member.name} unbanned {data['name']}", self.channel.permissions.get("ban"))

    async def on_set_options(self, member: Member, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if member.rank < 2:
            await self.channel.server.kick_member(member, "Attempted setOptions as a non-moderator")
            return
        for key, value in data.items():
            if key == "password":
                if member.rank >= 3:  # opts.js: "" clears it, at most 100 characters
                    text = str(value).lower() if isinstance(value, bool) else str(value)  # JS `+ ""`
                    self.channel.options["password"] = text[:100] if text else False
            elif key in self.channel.options and (
                key not in {"pagetitle", "externalcss", "externaljs"} or member.rank >= 3
            ):
                self.channel.options[key] = value
        await self.channel.broadcast("channelOpts", dict(self.channel.options))

    async def on_set_permissions(self, member: Member, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if member.rank < 3:
            await self.channel.server.kick_member(member, "Attempted setPermissions as a non-admin")
            return
        for key, value in data.items():
            number = _number(value)
            if number is not None and key in self.channel.permissions:  # absent keys cannot be added
                self.channel.permissions[key] = number
        if "seeplaylist" in data:
            for other in list(self.channel.members):
                await self.channel.playlist.send_playlist(other)
        await self.channel.broadcast("setPermissions", dict(self.channel.permissions))

    async def on_set_motd(self, member: Member, data: dict[str, Any]) -> None:
        if not self.channel.may(member, "motdedit"):
            await self.channel.server.kick_member(member, "Attempted setMotd with insufficient permission")
            return
        self.channel.motd = data["motd"][:20000]
        await self.channel.broadcast("setMotd", self.channel.motd)

    async def on_set_channel_rank(self, member: Member, data: dict[str, Any]) -> None:
        channel = self.channel
        if member.rank < 3:
            return
        name, rank = data["name"], data["rank"]
        if name.lower() == member.lower:
            await channel.send(
                member, "channelRankFail", {"msg": RANK_FAIL + "You can't promote or demote yourself."}
            )
            return
        target = channel.find(name)
        if rank >= member.rank or rank < 1 or (target is not None and target.rank >= member.rank):
            await channel.send(
                member,
                "channelRankFail",
                {
                    "msg": RANK_FAIL + "You can't promote someone to a rank equal or higher than yourself, "
                    "or demote them to below rank 1."
                },
            )
            return
        if target is not None:
            await channel.set_rank(target, rank)
            if channel.registered and target.registered:
                channel.channel_ranks[target.lower] = rank
            else:
                await channel.send(
                    member,
                    "channelRankFail",
                    {
                        "msg": "The user you promoted is not a registered account.  Any rank changes are "
                        "temporary and not stored in the database."
                    },
                )
            return
        if not channel.registered:
            await channel.send(
                member,
                "channelRankFail",
                {
                    "msg": RANK_FAIL + "in an unregistered channel, a user must be online in the channel in "
                    "order to have their rank changed."
                },
            )
            return
        channel.channel_ranks[name.lower()] = rank
        await channel.broadcast("setUserRank", {"name": name, "rank": rank}, where=lambda m: m.rank >= 3)
        await self.mod_whisper(f"{member.name} set {name}'s rank to {rank:g}", 3)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else number  # 2, not 2.0, as CyTube sends it
