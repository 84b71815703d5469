"""A DJ bot for CyTube as a daz plugin: keeps the playlist topped up, announces what plays, !add, !skip.

It shows the channel side of the plugin surface (see docs/plugins.md and docs/channel.md):

* ``ctx.channel(room)``: the room's replica (what is on the playlist, what plays), read fresh each time;
* ``ctx.actions``: durable, confirmed actions (queue, skip) with tickets, in order with chat lines;
* the command framework: ``!add`` and ``!skip`` with a minimum rank from the replica and cooldowns;
* ``channel.*`` / ``room.resynced`` events: react to the playlist and the media changing, and to a
  reconnect (the replica is rebuilt from the server; whatever the server lost is topped up again).

The decision of what to queue is pure (``next_tracks``), so it is tested without any I/O. Top-ups
run in the plugin's own task (``run``), one room at a time, never from an event handler: a handler
only marks the room as wanting a look.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, model_validator

from daz.cytube.actions import QueueMedia
from daz.cytube.channel import ChannelState
from daz.errors import ActionError, ActionInvalid
from daz.events.bus import Event
from daz.plugins.base import PluginContext, PluginSettings, parse_settings
from daz.plugins.command_framework import Arg, Command, CommandRouter, Invocation

RESULT_TIMEOUT_SECONDS = 60.0
COMMAND_WAIT_SECONDS = 20.0


class Track(PluginSettings):
    type: Annotated[str, Field(min_length=2, max_length=2)]
    id: Annotated[str, Field(min_length=1)]
    title: str | None = None
    duration: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _queueable(self) -> Track:
        # The same local validation ctx.actions.queue runs: a track it would refuse is a
        # configuration error naming plugins.dj.tracks.<n> at start, not a warning on every top-up.
        try:
            QueueMedia(self.type, self.id, title=self.title, duration=self.duration).validate()
        except ActionInvalid as exc:
            raise ValueError(str(exc).removeprefix("queue: ")) from exc
        return self


class DjSettings(PluginSettings):
    tracks: Annotated[list[Track], Field(min_length=1)]
    rooms: tuple[str, ...] = ()  # empty: every room the bot is in
    keep_queued: Annotated[int, Field(ge=1, le=50)] = 2
    add_rank: float = 1.0
    skip_rank: float = 2.0
    announce: bool = True
    prefix: Annotated[str, Field(min_length=1, max_length=3, pattern=r"^\S+$")] = "!"
    user_cooldown_seconds: Annotated[float, Field(ge=0)] = 10.0


@dataclass(frozen=True, slots=True)
class Pick:
    track: Track
    index: int  # the track's position in the configured list


def next_tracks(state: ChannelState | None, tracks: Sequence[Track], cursor: int, keep: int) -> list[Pick]:
    """What to queue so ``keep`` items are on the playlist: configured tracks in turn from ``cursor``,
    skipping those already on it (the server refuses duplicates). Pure."""
    if state is None or len(state.items) >= keep:
        return []
    wanted = keep - len(state.items)
    picks: list[Pick] = []
    for step in range(len(tracks)):
        index = (cursor + step) % len(tracks)
        track = tracks[index]
        if state.find_media(track.type, track.id) is None:
            picks.append(Pick(track, index))
            if len(picks) == wanted:
                break
    return picks


def now_playing(data: Mapping[str, Any]) -> str | None:
    """The announcement for a ``channel.media.changed`` event, None when nothing plays. Pure."""
    media = data.get("media")
    title = getattr(media, "title", None)
    return f"Now playing: {title}" if title else None


class DjPlugin:
    name = "dj"
    depends_on: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.settings = parse_settings(DjSettings, self.name, config or {})
        self.cursor = 0
        self.queued = 0
        self._ctx: PluginContext | None = None
        self._wanted: asyncio.Queue[str] = asyncio.Queue()

    # setup --------------------------------------------------------------------------------------
    async def setup(self, ctx: PluginContext) -> None:
        self._ctx = ctx
        s = self.settings
        router = CommandRouter(ctx, prefix=s.prefix)
        router.add(Command("add", self.add, "queue a video", min_rank=s.add_rank,
                           user_cooldown=s.user_cooldown_seconds, args=(Arg("type"), Arg("id"))))
        router.add(Command("skip", self.skip, "skip what plays", min_rank=s.skip_rank,
                           user_cooldown=s.user_cooldown_seconds, room_cooldown=5))
        router.attach()
        for pattern in ("channel.synced", "room.resynced", "channel.playlist.changed"):
            ctx.subscribe(pattern, self.on_playlist)
        ctx.subscribe("channel.media.changed", self.on_media)

    def mine(self, room: str) -> bool:
        return not self.settings.rooms or room in self.settings.rooms

    # events (cheap: the work happens in run) -----------------------------------------------------
    def on_playlist(self, event: Event) -> None:
        room = str(event.data.get("room", "")) if isinstance(event.data, Mapping) else ""
        if room and self.mine(room):
            self._wanted.put_nowait(room)

    async def on_media(self, event: Event) -> None:
        ctx = self._ctx
        data = event.data if isinstance(event.data, Mapping) else {}
        room = str(data.get("room", ""))
        line = now_playing(data)
        if ctx is None or ctx.rooms is None or line is None:
            return
        if not self.settings.announce or not self.mine(room):
            return
        await ctx.rooms.send_chat(room, line)

    # the top-up loop ------------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            worker = tg.create_task(self._top_up_forever(), name="dj.top_up")
            await stopping.wait()
            worker.cancel()

    async def _top_up_forever(self) -> None:
        while True:
            room = await self._wanted.get()
            await self.top_up(room)

    async def top_up(self, room: str) -> int:
        """Queue what ``next_tracks`` says and wait for each confirmation; returns how many landed."""
        ctx = self._ctx
        if ctx is None or ctx.actions is None:
            return 0
        landed = 0
        s = self.settings
        for pick in next_tracks(ctx.channel(room), s.tracks, self.cursor, s.keep_queued):
            self.cursor = pick.index + 1
            t = pick.track
            try:
                ticket = await ctx.actions.queue(room, t.type, t.id, title=t.title, duration=t.duration)
                await ticket.result(timeout=RESULT_TIMEOUT_SECONDS)
            except (ActionError, TimeoutError) as exc:
                # A refused track (gone, too long, duplicate) is skipped; the next playlist change
                # tries again with the following one. A timeout means the room is offline: the
                # action stays queued durably and is confirmed once it is back.
                ctx.log.warning("dj.top_up_failed", room=room, track=t.id, error=str(exc))
                continue
            landed += 1
            self.queued += 1
        return landed

    # commands --------------------------------------------------------------------------------------
    async def add(self, call: Invocation) -> str:
        actions = call.ctx.actions
        if actions is None:
            return "no actions available"
        ticket = await actions.queue(call.room, call.args["type"], call.args["id"])  # ActionError → told
        try:
            outcome = await ticket.result(timeout=COMMAND_WAIT_SECONDS)
        except TimeoutError:
            return f"{call.args['id']} is queued and will be added when the room allows"
        return f"added {call.args['id']} for {call.user} (uid {outcome.uid})"

    async def skip(self, call: Invocation) -> str:
        actions = call.ctx.actions
        if actions is None:
            return "no actions available"
        ticket = await actions.skip(call.room)
        try:
            outcome = await ticket.result(timeout=COMMAND_WAIT_SECONDS)
        except TimeoutError:
            return "skip queued"
        return "skipped" if outcome.detail == "skipped" else f"nothing to skip ({outcome.detail})"
