"""What clients (and simulated users) may do to the playlist, with CyTube 3.86's rules (protocol notes
§3): every handler drops an unpermitted or malformed action silently, except where the real server
answers (``queueFail``, ``errorMsg``) or kicks (``assignLeader`` without ``leaderctl``)."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from daz.testing.fake_cytube.media import LIVE_TYPES, Item, MediaRefused, resolve
from daz.testing.fake_cytube.playlist import REQUEST_PLAYLIST_LIMITED, Playlist, link_for

if TYPE_CHECKING:
    from daz.testing.fake_cytube.channel import FakeChannel
    from daz.testing.fake_cytube.members import Member


class PlaylistActions:
    def __init__(self, channel: FakeChannel, playlist: Playlist) -> None:
        self.channel = channel
        self.pl = playlist

    # handlers (from a socket or a simulated user) -------------------------------------------------
    async def on_queue(self, member: Member, data: dict[str, Any]) -> None:
        media_id, media_type, pos = data["id"], data["type"], data["pos"]
        if isinstance(media_id, bool) or pos not in {"next", "end"}:
            return
        title = (
            data.get("title") if isinstance(data.get("title"), str) and media_type in {"cu", "fi"} else None
        )
        may = self.channel.may
        if not may(member, "playlistadd") or (pos == "next" and not may(member, "playlistnext")):
            return
        link = link_for(media_type, media_id)
        refusal = None
        if media_type == "yp" and not may(member, "playlistaddlist"):
            refusal = "You don't have permission to add playlists"
        elif media_type in LIVE_TYPES and not may(member, "playlistaddlive"):
            refusal = "You don't have permission to add live media"
        elif media_type == "cu" and not may(member, "playlistaddcustom"):
            refusal = "You don't have permission to add custom embeds"
        elif media_type in {"fi", "cm"} and not may(member, "playlistaddrawfile"):
            refusal = "You don't have permission to add raw video files"
        if refusal is None and not self._queue_allowed(member):
            refusal = "You are adding videos too quickly"
        if refusal is None:
            temp = bool(data.get("temp")) or not may(member, "addnontemp")
            duration = data.get("duration") if media_type in LIVE_TYPES else None
            maxlength = (
                0.0 if may(member, "exceedmaxlength") else float(self.channel.options.get("maxlength") or 0)
            )
            try:
                media = resolve(
                    self.channel.server.catalog, media_type, media_id, title=title, duration=duration
                )
            except MediaRefused as exc:
                refusal = exc.msg
            else:
                refusal = await self.pl.add(member, media, pos=pos, temp=temp, maxlength=maxlength)
        if refusal is not None:
            await self.channel.send(member, "queueFail", {"msg": refusal, "link": link, "id": media_id})

    def _queue_allowed(self, member: Member) -> bool:
        limiter = member.queue_limiter
        fresh = self.channel.server.gate.queue_limiter(member.rank)
        if fresh is None:
            return True
        if limiter is None or limiter.burst != fresh.burst:
            limiter = member.queue_limiter = fresh
        return limiter.allow()

    async def on_delete(self, member: Member, data: Any) -> None:
        if (
            self.channel.may(member, "playlistdelete")
            and isinstance(data, int)
            and not isinstance(data, bool)
        ):
            await self.pl.delete(data)

    async def on_set_temp(self, member: Member, data: dict[str, Any]) -> None:
        item = self.pl.find(data["uid"])
        if not self.channel.may(member, "settemp") or item is None:
            return
        item.temp = data["temp"]
        await self.channel.broadcast("setTemp", data)

    async def on_move_media(self, member: Member, data: dict[str, Any]) -> None:
        if not self.channel.may(member, "playlistmove"):
            return
        moving, after = self.pl.find(data["from"]), data["after"]
        target = self.pl.find(after)
        if moving is None or moving is target:
            return
        if after == "prepend":
            self.pl.items.remove(moving)
            self.pl.items.insert(0, moving)
        elif after == "append":
            self.pl.items.remove(moving)
            self.pl.items.append(moving)
        elif target is not None:
            self.pl.items.remove(moving)
            self.pl.items.insert(self.pl.items.index(target) + 1, moving)
        else:
            # CyTube removes the item first and then fails to insert it after the unknown uid
            # (playlist.js handleMoveMedia): the item is GONE, silently, and nobody is told (measured
            # on 3.86). Every client's playlist is wrong until it joins again. Not modelled for the
            # item playing now (CyTube keeps playing it off the list), the fake keeps it then.
            if moving is not self.pl.current:
                self.pl.items.remove(moving)
            return
        await self.channel.broadcast("moveVideo", data)

    async def on_jump_to(self, member: Member, data: Any) -> None:
        if not isinstance(data, str | int) or not self.channel.may(member, "playlistjump"):
            return
        target = self.pl.find(data)
        if target is None:
            return
        old, self.pl.current = self.pl.current, target
        if old is not None and old.temp and old is not target:
            # CyTube calls startPlayback first, but its changeMedia waits for the onPreMediaChange
            # round (asynchronous), so the old item's delete and setPlaylistMeta reach the clients
            # BEFORE setCurrent/changeMedia (measured on 3.86).
            await self.pl.delete(old.uid)
        await self.pl.start_playback()

    async def on_play_next(self, member: Member, data: Any = None) -> None:
        if self.channel.may(member, "playlistjump"):
            await self.pl.play_next()

    async def on_clear(self, member: Member, data: Any = None) -> None:
        if not self.channel.may(member, "playlistclear"):
            return
        self.pl.current = None
        self.pl.items.clear()
        self.pl.leading = False
        await self.channel.broadcast("playlist", [])
        await self.channel.broadcast("setPlaylistMeta", self.pl.meta())

    async def on_shuffle(self, member: Member, data: Any = None) -> None:
        if not self.channel.may(member, "playlistshuffle"):
            return
        current_uid = self.pl.current.uid if self.pl.current is not None else None
        at = self.pl.current_time if self.pl.current is not None else None
        old = list(self.pl.items)
        random.shuffle(old)
        self.pl.items = []
        for item in old:  # every item gets a new uid; the current one goes first
            fresh = Item(item.media, self.pl.next_uid, item.temp, item.queueby)
            self.pl.next_uid += 1
            if item.uid == current_uid:
                self.pl.items.insert(0, fresh)
            else:
                self.pl.items.append(fresh)
        self.pl.current = self.pl.items[0] if self.pl.items else None
        await self.channel.broadcast(
            "playlist", [i.pack() for i in self.pl.items], where=lambda m: self.channel.may(m, "seeplaylist")
        )
        await self.pl.start_playback(at)

    async def on_toggle_lock(self, member: Member, data: Any = None) -> None:
        if not self.channel.may(member, "playlistlock"):
            return
        self.channel.open_playlist = not self.channel.open_playlist
        await self.channel.broadcast("setPlaylistLocked", not self.channel.open_playlist)

    async def on_player_ready(self, member: Member, data: Any = None) -> None:
        await self.pl.send_change_media(member)

    async def on_request_playlist(self, member: Member, data: Any = None) -> None:
        last = self.pl.playlist_requests.get(member.key)
        now = time.monotonic()
        if last is not None and now - last < 60 and self.channel.limits.enabled:
            await self.channel.send(
                member, "errorMsg", {"msg": REQUEST_PLAYLIST_LIMITED, "code": "REQ_PLAYLIST_LIMIT_REACHED"}
            )
            return
        self.pl.playlist_requests[member.key] = now
        await self.pl.send_playlist(member)

    # leader -------------------------------------------------------------------------------------
    async def on_assign_leader(self, member: Member, data: dict[str, Any]) -> None:
        if not self.channel.may(member, "leaderctl"):
            await self.channel.server.kick_member(
                member, "Attempted assignLeader without sufficient permission"
            )
            return
        name = data["name"]
        if self.pl.leader is not None:
            old, self.pl.leader = self.pl.leader, None
            if old.rank == 1.5 and old.rank_before_leader is not None:
                old.rank, old.rank_before_leader = old.rank_before_leader, None
                await self.channel.send(old, "rank", old.rank)
            await self.channel.broadcast("setUserRank", {"name": old.name, "rank": old.rank})
        if not name:
            await self.pl.resume_autolead()
            return
        chosen = next((m for m in self.channel.members if m.name == name), None)
        if chosen is None:
            await self.channel.send(
                member, "errorMsg", {"msg": f"Unable to assign leader: could not find user {name}"}
            )
            return
        self.pl.leader = chosen
        self.pl.leading = False
        if chosen.rank < 1.5:
            chosen.rank_before_leader, chosen.rank = chosen.rank, 1.5
            await self.channel.send(chosen, "rank", 1.5)
        await self.channel.broadcast("setLeader", name)
        if chosen.rank == 1.5:
            await self.channel.broadcast("setUserRank", {"name": name, "rank": 1.5})

    async def on_media_update(self, member: Member, data: dict[str, Any]) -> None:
        if self.pl.leader is not member or self.pl.current is None:
            return
        media = self.pl.current.media
        if media.type in LIVE_TYPES or media.id != data["id"]:
            return
        self.pl.current_time = float(data["currentTime"])
        self.pl.paused = bool(data.get("paused"))
        await self.channel.broadcast("mediaUpdate", self.pl.time_update())
