"""The DJ plugin: its pure core, then the whole bot against the fake CyTube server, with a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from daz_dj import DjPlugin, DjSettings, Track, next_tracks, now_playing

from daz.app import AppOptions, DazApp
from daz.config import validate_config
from daz.cytube import channel_wire as cw
from daz.cytube.channel import ChannelState, apply
from daz.errors import ConfigError
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer

TRACKS = [Track(type="rt", id=f"rtmp://example.com/live/{n}", duration=60) for n in "abc"]


def playlist(*ids: str) -> ChannelState:
    items = tuple(
        cw.PlaylistItem(uid, cw.Media(i, "rt", "Livestream", 60), True, "dj") for uid, i in enumerate(ids)
    )
    return apply(ChannelState(), cw.PlaylistReplaced(items))


def test_next_tracks_tops_up_in_turn_and_skips_what_is_there() -> None:
    a, b, c = (t.id for t in TRACKS)
    assert [p.track.id for p in next_tracks(playlist(), TRACKS, 0, 2)] == [a, b]
    assert [p.track.id for p in next_tracks(playlist(a), TRACKS, 1, 2)] == [b]
    assert [p.track.id for p in next_tracks(playlist(b), TRACKS, 1, 3)] == [c, a]  # b is there already
    assert next_tracks(playlist(a, b), TRACKS, 0, 2) == []
    assert next_tracks(None, TRACKS, 0, 2) == []  # no replica yet: nothing to decide on
    assert [p.index for p in next_tracks(playlist(), TRACKS, 2, 2)] == [2, 0]  # wraps around


def test_now_playing() -> None:
    media = cw.Media("rtmp://x", "rt", "Livestream", 60)
    assert now_playing({"media": media}) == "Now playing: Livestream"
    assert now_playing({"media": None}) is None


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        DjPlugin({"tracks": [], "keep_queued": 0})
    problems = "\n".join(info.value.problems)
    assert "plugins.dj.tracks:" in problems
    assert "plugins.dj.keep_queued:" in problems
    assert DjSettings(tracks=TRACKS).keep_queued == 2


def test_a_track_the_server_would_refuse_is_a_config_error_at_start() -> None:
    # Found at start with the field named, not as a warning on every top-up while the DJ runs.
    with pytest.raises(ConfigError) as info:
        DjPlugin({"tracks": [{"type": "zz", "id": "a"},
                             {"type": "yt", "id": "b", "title": "kept only for cu and fi"},
                             {"type": "yt", "id": "c", "duration": 30}]})
    problems = "\n".join(info.value.problems)
    assert "plugins.dj.tracks.0" in problems
    assert "unknown media type 'zz'" in problems
    assert "plugins.dj.tracks.1" in problems
    assert "title is kept only for types cu and fi" in problems
    assert "plugins.dj.tracks.2" in problems
    assert "duration is honoured only for live types" in problems


async def _until(cond: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_the_dj_keeps_the_playlist_topped_up_across_a_server_restart(tmp_path: Path) -> None:
    limits = CytubeLimits(refill_seconds=0.2, guest_login_window_seconds=0.3)
    async with FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=limits) as server:
        config = validate_config(
            {
                "rooms": [{"channel": "lobby", "username": "DJ"}],
                "cytube": {
                    "base_url": server.url,
                    # daz is told this (fake) server's numbers, as an operator configures theirs
                    "servers": {
                        "default": {"connection_refill_seconds": 0.2, "guest_login_window_seconds": 0.3,
                                    "token_margin_seconds": 0.01}
                    },
                    "backoff": {"base_seconds": 0.2, "max_seconds": 1.0},
                    "probe": {"enabled": False},
                },
                "database": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
                "spool": {"path": str(tmp_path / "spool.sqlite")},
                "health": {"enabled": False},
                "plugins": {
                    "dj": {
                        "tracks": [t.model_dump() for t in TRACKS],
                        "keep_queued": 2,
                        "add_rank": 1,
                        "skip_rank": 2,
                        "user_cooldown_seconds": 0,
                    }
                },
            }
        )
        dj: list[DjPlugin] = []

        def factory(section: Any) -> DjPlugin:
            dj.append(DjPlugin(section))
            return dj[-1]

        def ids() -> list[str]:
            return [item.id for item in server.channel_state("lobby").items]

        def said(text: str) -> bool:
            return any(r.username == "DJ" and text in r.text for r in server.chat_log("lobby"))

        async with DazApp(config, AppOptions(plugin_factories={"dj": factory})) as app:
            stopping = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(app.run(stopping))
                try:
                    await _until(lambda: len(ids()) == 2)
                    assert ids() == [TRACKS[0].id, TRACKS[1].id]
                    await _until(lambda: said("Now playing: Livestream"))
                    await server.add_user("lobby", "alice", rank=1)
                    await server.add_user("lobby", "guest1", rank=0)
                    await server.add_user("lobby", "mod", rank=2)
                    await _until(
                        lambda: (
                            app.rooms.channel("lobby") is not None
                            and app.rooms.channel("lobby").user("mod") is not None
                        )
                    )  # type: ignore[union-attr]
                    await server.say("lobby", "guest1", "!add rt rtmp://example.com/live/guest")
                    await server.say("lobby", "alice", "!add rt rtmp://example.com/live/alice")
                    await _until(lambda: "rtmp://example.com/live/alice" in ids())
                    await _until(lambda: said("added rtmp://example.com/live/alice for alice"))
                    assert "rtmp://example.com/live/guest" not in ids()  # below add_rank
                    playing = server.channel_state("lobby").current_uid
                    await server.say("lobby", "mod", "!skip")
                    await _until(lambda: server.channel_state("lobby").current_uid != playing)
                    # The server restarts and forgets this unregistered channel's playlist: the DJ
                    # sees the resync and tops the playlist up again, without duplicates.
                    await server.restart()
                    await _until(lambda: len(ids()) >= 2)
                    await asyncio.sleep(0.5)
                    after = ids()
                finally:
                    stopping.set()
    assert len(after) == len(set(after)) == 2
    assert set(after) <= {t.id for t in TRACKS}
    assert dj[-1].queued >= 4
