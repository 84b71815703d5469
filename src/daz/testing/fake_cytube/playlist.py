"""The playlist and its playback clock, with CyTube 3.86's rules (protocol notes §3, playlist.js).

uids are a per-channel counter that never resets while the server runs; ``queue`` ``next`` goes after
the current item; the clock starts a timed item at ``-lead_in`` (paused), ticks every ``tick_seconds``,
sends ``mediaUpdate`` every ``update_every_ticks`` ticks and advances ``end_grace_seconds`` after the
end: a temp item is deleted first, a single non-temp item loops, and after the last temp item only
``delete`` + ``setPlaylistMeta`` are sent (nothing plays). Unpermitted or malformed actions are dropped
silently, as the real server drops them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from daz.testing.fake_cytube.media import Item, Media, format_time

if TYPE_CHECKING:
    from daz.testing.fake_cytube.channel import FakeChannel
    from daz.testing.fake_cytube.members import Member

MAX_ITEMS = 4000
REQUEST_PLAYLIST_LIMITED = (
    "Get Playlist URLs is limited to 1 usage every 60 seconds.  Please try again later."
)


@dataclass(frozen=True, slots=True)
class PlaybackTiming:
    """The server's playback clock; defaults = CyTube (``playlist.update-interval: 5``).

    Tests shrink it, e.g. ``PlaybackTiming(tick_seconds=0.1, lead_in_seconds=0.3, end_grace_seconds=0.2)``:
    then ``mediaUpdate`` comes every 0.5 s and ``changeMedia`` says ``currentTime: -0.3``.
    """

    tick_seconds: float = 1.0
    update_every_ticks: int = 5
    lead_in_seconds: float = 3.0
    end_grace_seconds: float = 2.0

    def __post_init__(self) -> None:
        for name in ("tick_seconds", "update_every_ticks", "lead_in_seconds", "end_grace_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"PlaybackTiming.{name} must be a positive number, got {value!r}")


_LINK_PREFIX = {
    "yt": "https://youtu.be/",
    "vi": "https://vimeo.com/",
    "dm": "https://dailymotion.com/video/",
    "li": "https://livestream.com/",
    "tw": "https://twitch.tv/",
    "gd": "https://docs.google.com/file/d/",
    "sb": "https://streamable.com/",
    "tc": "https://clips.twitch.tv/",
    "nv": "https://www.nicovideo.jp/watch/",
}


def link_for(media_type: str, media_id: str) -> str:
    """``queueFail``'s ``link``: CyTube's utilities.js ``formatLink`` of the id as sent (measured on
    3.86: ``https://youtu.be/<id>`` for yt, the id itself for sc/rt/fi/hl/cm, ``""`` for cu and
    unknown types)."""
    if media_type in _LINK_PREFIX:
        return _LINK_PREFIX[media_type] + media_id
    if media_type in {"sc", "rt", "fi", "hl", "cm"}:
        return media_id
    parts = media_id.split(";")
    first, second = parts[0], parts[1] if len(parts) > 1 else "undefined"
    if media_type == "pt":
        return f"https://{first}/videos/watch/{second}"
    if media_type == "bc":
        return f"https://www.bitchute.com/video/{media_id}/"
    if media_type == "bn":
        return f"https://{first}.bandcamp.com/track/{second}"
    if media_type == "od":
        return f"https://odysee.com/@{first}/{second}"
    return ""


class Playlist:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel
        self.items: list[Item] = []
        self.next_uid = 0
        self.current: Item | None = None
        self.leader: Member | None = None
        self.current_time = 0.0
        self.paused = False
        self.held = False  # a test's pause(): the clock stops as under a pausing leader
        self.leading = False  # the server's clock runs for the current item
        self._last_update = 0.0
        self._counter = 0
        self._next_tick = 0.0
        self._clock: asyncio.Task[None] | None = None
        self._closed = False
        self.playlist_requests: dict[str, float] = {}

    @property
    def timing(self) -> PlaybackTiming:
        return self.channel.server.playback

    # wire payloads ----------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        raw = sum(item.media.seconds for item in self.items)
        raw_out: float = int(raw) if float(raw).is_integer() else raw
        return {"count": len(self.items), "rawTime": raw_out, "time": format_time(raw)}

    def full_update(self) -> dict[str, Any]:
        assert self.current is not None  # noqa: S101 - callers check
        return {**self.current.media.pack(), "currentTime": self.current_time, "paused": self.paused}

    def time_update(self) -> dict[str, Any]:
        return {"currentTime": self.current_time, "paused": self.paused}

    async def send_playlist(self, member: Member) -> None:
        await self.channel.send(member, "setPlaylistMeta", self.meta())
        if not self.channel.may(member, "seeplaylist"):
            return
        await self.channel.send(member, "playlist", [item.pack() for item in self.items])
        if self.current is not None:
            await self.channel.send(member, "setCurrent", self.current.uid)

    async def send_change_media(self, member: Member | None = None) -> None:
        """``setCurrent`` + ``changeMedia`` to one member, or to all (then drinkCount and voteskip)."""
        if self.current is None:
            return
        if member is not None:
            await self.channel.send(member, "setCurrent", self.current.uid)
            await self.channel.send(member, "changeMedia", self.full_update())
            return
        self.channel.voteskip.reset()
        await self.channel.broadcast("setCurrent", self.current.uid)
        await self.channel.broadcast("changeMedia", self.full_update())
        await self.channel.broadcast("drinkCount", 0)
        await self.channel.broadcast(
            "voteskip", {"count": 0, "need": 0}, where=lambda m: self.channel.may(m, "viewvoteskip")
        )

    # the clock --------------------------------------------------------------------------------------
    async def start_playback(self, at: float | None = None) -> None:
        if self.current is None:
            return
        self.current_time, self.paused = 0.0, False
        self.leading = False
        media = self.current.media
        if self.leader is not None:
            self.current_time = at or 0.0
            await self.send_change_media()
            return
        start = at or (-self.timing.lead_in_seconds if not media.live else 0.0)
        self.paused = start < 0
        self.current_time = start
        await self.send_change_media()
        if not media.live and not self.held:
            self.start_clock()

    def start_clock(self) -> None:
        if self._closed:
            return  # the channel was discarded (server stopped) while a tick was still running
        now = time.monotonic()
        self._last_update = now
        self.leading = True
        self._next_tick = now + self.timing.tick_seconds
        if self._clock is None or self._clock.done():
            self._clock = self.channel.server.spawn(
                self._run_clock(), f"fake_cytube.clock.{self.channel.name}"
            )

    def close(self) -> None:
        """The channel is discarded: stop the clock for good."""
        self._closed = True
        self.stop_clock()

    def stop_clock(self) -> None:
        self.leading = False
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    async def _run_clock(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._next_tick - time.monotonic()))
            if time.monotonic() < self._next_tick - 0.001:
                continue  # playback restarted while this tick slept: its phase moved
            self._next_tick += self.timing.tick_seconds
            await self.tick()

    async def tick(self) -> None:
        if self.current is None or not self.leading or self.channel.server.media_updates_stopped:
            return
        now = time.monotonic()
        dt = now - self._last_update
        if self.current_time < 0 <= self.current_time + dt:  # the lead-in ends
            self.current_time, self.paused, self._counter, self._last_update = 0.0, False, 0, now
            await self.channel.broadcast("mediaUpdate", self.time_update())
            return
        self.current_time += dt
        self._last_update = now
        self._counter += 1
        if self.current_time >= self.current.media.seconds + self.timing.end_grace_seconds:
            await self.play_next()
        elif self._counter % self.timing.update_every_ticks == 0:
            await self.channel.broadcast("mediaUpdate", self.time_update())

    async def play_next(self) -> None:
        if self.current is None:
            return
        following = self._after(self.current) or self.items[0]
        if self.current.temp:
            await self.delete(self.current.uid)  # starts the next item, or leaves nothing playing
        else:
            self.current = following
            await self.start_playback()

    def _after(self, item: Item) -> Item | None:
        index = self.items.index(item)
        return self.items[index + 1] if index + 1 < len(self.items) else None

    def find(self, uid: Any) -> Item | None:
        if isinstance(uid, bool) or not isinstance(uid, int | float):
            return None
        return next((item for item in self.items if item.uid == uid), None)

    # internal edits -------------------------------------------------------------------------------
    async def delete(self, uid: int) -> bool:
        item = self.find(uid)
        if item is None:
            return False
        following = self._after(item) or self.items[0]
        self.items.remove(item)
        meta = self.meta()
        for member in list(self.channel.members):
            if self.channel.may(member, "seeplaylist"):
                await self.channel.send(member, "delete", {"uid": uid})
            await self.channel.send(member, "setPlaylistMeta", meta)
        if self.current is item and following is item:
            self.current = None  # the last item is gone: nothing plays, and no changeMedia says so
            self.leading = False
        elif self.current is item:
            self.current = following
            await self.start_playback()
        return True

    async def add(
        self, member: Member, media: Media, *, pos: str, temp: bool, maxlength: float
    ) -> str | None:
        """Add ``media``; None on success, else the ``queueFail`` message."""
        options = self.channel.options
        allow_dupes = bool(options.get("allow_dupes"))
        if media.seconds <= 0 and not self.channel.may(member, "playlistaddlive"):
            return "You don't have permission to add livestreams"
        if maxlength > 0 and media.seconds > maxlength:
            return f"Video exceeds the maximum length set by the channel admin: {maxlength:g} seconds"
        if len(self.items) >= MAX_ITEMS:
            return f"Playlist limit reached ({MAX_ITEMS})"
        existing = next((i for i in self.items if i.media.id == media.id), None)
        if existing is not None and not allow_dupes and (pos == "end" or existing is self.current):
            return "This item is already on the playlist"
        mine = [i for i in self.items if i.queueby.lower() == member.lower]
        per_user = options.get("playlist_max_per_user") or 0
        if per_user and len(mine) >= per_user and not self.channel.may(member, "exceedmaxitems"):
            return "Channel limit exceeded: maximum number of videos per user"
        item = Item(media, self.next_uid, temp, member.name or "")
        self.next_uid += 1
        if pos == "end" or self.current is None:
            self.items.append(item)
        else:
            self.items.insert(self.items.index(self.current) + 1, item)
            if existing is not None and not allow_dupes:
                item.temp = existing.temp
                await self.delete(existing.uid)
        await self._announce(item)
        return None

    async def _announce(self, item: Item) -> None:
        index = self.items.index(item)
        packet = {"item": item.pack(), "after": self.items[index - 1].uid if index > 0 else "prepend"}
        meta = self.meta()
        for member in list(self.channel.members):
            if self.channel.may(member, "seeplaylist"):
                await self.channel.send(member, "queue", packet)
            await self.channel.send(member, "setPlaylistMeta", meta)
        if len(self.items) == 1:
            self.current = item
            await self.start_playback()

    async def resume_autolead(self) -> None:
        await self.channel.broadcast("setLeader", "")
        if self.current is None:
            return
        self.paused = False
        await self.channel.broadcast("mediaUpdate", self.time_update())
        if not self.leading and not self.current.media.live and not self.held:
            self.start_clock()
            await self.tick()

    async def user_left(self, member: Member) -> None:
        if self.leader is member:
            self.leader = None
            await self.resume_autolead()

    # test controls -------------------------------------------------------------------------------
    async def play_now(self, media: Media, *, temp: bool) -> Item:
        """The server puts ``media`` after the current item and starts it (a moderator's add + jump)."""
        item = Item(media, self.next_uid, temp, "")
        self.next_uid += 1
        if self.current is None:
            self.items.append(item)
        else:
            self.items.insert(self.items.index(self.current) + 1, item)
        index = self.items.index(item)
        packet = {"item": item.pack(), "after": self.items[index - 1].uid if index > 0 else "prepend"}
        await self.channel.broadcast("queue", packet, where=lambda m: self.channel.may(m, "seeplaylist"))
        await self.channel.broadcast("setPlaylistMeta", self.meta())
        old, self.current = self.current, item
        await self.start_playback()
        if old is not None and old.temp:
            await self.delete(old.uid)
        return item

    async def hold(self, paused: bool) -> None:
        """Pause or resume the clock as a pausing leader would (``mediaUpdate`` to all)."""
        self.held = paused
        if self.current is None:
            return
        self.paused = paused
        if paused:
            if self.leading:
                self.current_time += time.monotonic() - self._last_update
            self.leading = False
        elif not self.current.media.live and self.leader is None:
            self.start_clock()
        await self.channel.broadcast("mediaUpdate", self.time_update())

    def position_now(self) -> float:
        """The server's position extrapolated to now (its clock only moves on ticks)."""
        if not self.leading or self.paused:
            return self.current_time
        return self.current_time + (time.monotonic() - self._last_update)

    # persistence (registered channels keep their playlist across a restart) ------------------------
    def dump(self) -> tuple[list[tuple[Media, bool, str]], int | None, float]:
        index = self.items.index(self.current) if self.current is not None else None
        return [(i.media, i.temp, i.queueby) for i in self.items], index, self.position_now()

    def load(self, saved: tuple[list[tuple[Media, bool, str]], int | None, float]) -> None:
        """As CyTube loads a saved playlist into a fresh channel (nobody has joined yet): uids
        renumbered from the channel's counter (0 after a restart), playback resumed at the saved time."""
        entries, index, at = saved
        for number, (media, temp, queueby) in enumerate(entries):
            item = Item(media, self.next_uid, temp, queueby)
            self.next_uid += 1
            self.items.append(item)
            if number == index:
                self.current = item
        if self.current is None and self.items:
            self.current, at = self.items[0], 0.0
        if self.current is None:
            return
        media = self.current.media
        start = at or (-self.timing.lead_in_seconds if not media.live else 0.0)
        self.current_time, self.paused = start, start < 0
        if not media.live:
            self.start_clock()
