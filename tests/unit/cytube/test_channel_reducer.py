"""The channel replica's reducer against the real server's sequences (cytube-protocol-actions.md)."""

from __future__ import annotations

import dataclasses

import pytest
from channel_payloads import (
    REGISTERED_PERMISSIONS,
    UNREGISTERED_PERMISSIONS,
    change_media,
    feed,
    item,
    join_sequence,
    user,
)

from daz.cytube import protocol
from daz.cytube.channel import ChannelState, apply

POLL = {"title": "Best?", "options": ["red", "blue &amp; green"], "counts": [0, 0],
        "initiator": "owner1", "timestamp": 1796158285695}


def joined(**kw: object) -> ChannelState:
    return feed(ChannelState(), join_sequence(**kw))  # type: ignore[arg-type]


def test_join_sequence_builds_the_whole_channel() -> None:
    state = joined(items=[item(1, "rtmp://x/a"), item(2, "rtmp://x/b", temp=False)], current=1,
                   users=[user("owner1", 255), user("guest1", 0, afk=True)], poll=POLL)
    assert [it.uid for it in state.items] == [1, 2]
    assert state.item(2) is not None
    assert state.item(2).temp is False
    assert state.current_uid == 1
    assert state.current == state.item(1)
    assert state.playback is not None
    assert state.playback.media.id == "rtmp://x/a"
    assert state.playing
    assert set(state.users) == {"owner1", "guest1", "bot"}
    assert state.user("GUEST1") is not None
    assert state.user("guest1").afk
    assert state.self_name == "bot"
    assert state.self_rank == 1
    assert state.poll is not None
    assert state.poll.options == ("red", "blue &amp; green")
    assert state.poll.counts == (0, 0)
    assert not state.poll.obscured
    assert state.options["allow_voteskip"] is True
    assert "password" not in state.options
    assert state.motd == "<b>hi</b>"
    assert state.emotes[0].name == ":)"
    assert state.locked
    assert state.registered
    assert state.usercount == 3
    assert state.playlist_count == 2


def test_permissions_registered_and_absent_keys() -> None:
    reg = joined()
    assert reg.permission("kick") == 1.5
    assert not reg.may("kick")
    assert reg.may("kick", 2)
    assert reg.may("chat")
    assert not reg.may("playlistdelete")
    assert reg.rank_needed("playlistdelete") == 2
    unreg = joined(registered=False)
    assert not unreg.registered
    for key in ("kick", "mute", "ban", "motdedit", "playlistaddrawfile"):
        assert unreg.permission(key) is None
        assert not unreg.may(key, 255), f"{key} is absent: nobody may, not even rank 255"
        assert unreg.rank_needed(key) is None
    assert unreg.may("playlistdelete", 0)


def test_unlocked_playlist_grants_the_o_keys() -> None:
    perms = {**REGISTERED_PERMISSIONS, "playlistadd": 1.5, "oplaylistadd": -1}
    locked = feed(ChannelState(), [("setPermissions", perms), ("setPlaylistLocked", True), ("rank", 1)])
    assert not locked.may("playlistadd")
    opened = feed(locked, [("setPlaylistLocked", False)])
    assert opened.may("playlistadd")
    assert opened.rank_needed("playlistadd") == -1
    # Only playlist* keys have an open variant.
    assert not feed(opened, [("setPermissions", {**perms, "okick": 0})]).may("kick")


def test_unknown_and_malformed_events_leave_the_state_unchanged() -> None:
    state = joined(items=[item(1, "a")], current=1)
    assert apply(state, protocol.parse("somethingNew", {"a": 1})) is state
    for name, data in [("queue", {"item": {"uid": "x"}}), ("delete", {"uid": -1}),
                       ("playlist", [{"uid": 5}]), ("setPermissions", {"kick": "x"}),
                       ("setCurrent", "1"), ("newPoll", {**POLL, "counts": [0]}),
                       ("usercount", -2), ("setLeader", 5), ("setUserMeta", {"name": "a", "meta": 3})]:
        event = protocol.parse(name, data)
        assert isinstance(event, protocol.Malformed), name
        assert apply(state, event) is state


def test_queue_positions_and_move() -> None:
    state = joined(items=[item(1, "a"), item(2, "b")], current=1)
    state = feed(state, [("queue", {"item": item(3, "c"), "after": 1}),
                         ("queue", {"item": item(4, "d"), "after": "prepend"}),
                         ("queue", {"item": item(5, "e"), "after": 2})])
    assert [it.uid for it in state.items] == [4, 1, 3, 2, 5]
    state = feed(state, [("moveVideo", {"from": 4, "after": "append"}),
                         ("moveVideo", {"from": 2, "after": "prepend"}),
                         ("moveVideo", {"from": 5, "after": 1})])
    assert [it.uid for it in state.items] == [2, 1, 5, 3, 4]
    assert state.index(5) == 2
    assert state.index(99) is None
    assert feed(state, [("moveVideo", {"from": 5, "after": 99})]) is state
    state = feed(state, [("setTemp", {"uid": 3, "temp": False})])
    assert state.item(3).temp is False  # type: ignore[union-attr]
    assert state.find_media("rt", "c") == state.item(3)


def test_snapshots_never_change_under_a_reader() -> None:
    before = joined(items=[item(1, "a")], users=[user("u1")])
    frozen = (before.items, dict(before.users), before.current_uid, before.playlist_count)
    after = feed(before, [("queue", {"item": item(2, "b"), "after": 1}), ("addUser", user("u2")),
                          ("userLeave", {"name": "u1"}), ("delete", {"uid": 1})])
    assert (before.items, dict(before.users), before.current_uid, before.playlist_count) == frozen
    assert [it.uid for it in after.items] == [2]
    assert set(after.users) == {"u2", "bot"}
    with pytest.raises(TypeError):
        before.users["x"] = before.users["u1"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.usercount = 3  # type: ignore[misc]


def test_users_rank_afk_meta_profile_leader() -> None:
    state = joined(users=[user("u1"), user("owner1", 255)])
    state = feed(state, [
        ("setUserRank", {"name": "U1", "rank": 1.5}), ("setAFK", {"name": "u1", "afk": True}),
        ("setUserMeta", {"name": "u1", "meta": {"afk": True, "muted": True}}),
        ("setUserMeta", {"name": "u1", "meta": {"afk": True, "muted": True, "smuted": True,
                                                "aliases": ["u1"], "ip": "x"}}),
        ("setUserProfile", {"name": "u1", "profile": {"image": "i", "text": "t"}}),
        ("setLeader", "u1"), ("usercount", 7),
    ])
    u1 = state.user("u1")
    assert u1 is not None
    assert (u1.rank, u1.afk, u1.muted, u1.smuted) == (1.5, True, True, True)
    assert (u1.profile_image, u1.profile_text) == ("i", "t")
    assert state.leader == "u1"
    assert state.usercount == 7
    left = feed(state, [("userLeave", {"name": "u1"})])
    assert left.user("u1") is None
    assert left.leader is None
    assert feed(state, [("setLeader", "")]).leader is None
    assert feed(state, [("setUserRank", {"name": "ghost", "rank": 3})]) is state
    # Duplicate login: userLeave then the new socket's addUser: one entry.
    again = feed(state, [("userLeave", {"name": "owner1"}), ("addUser", user("owner1", 255))])
    assert list(again.users).count("owner1") == 1


def test_polls_open_update_obscured_close() -> None:
    state = joined()
    state = feed(state, [("newPoll", {**POLL, "counts": ["?", "?"]})])
    assert state.poll is not None
    assert state.poll.obscured
    assert state.poll.counts == (None, None)
    state = feed(state, [("updatePoll", {**POLL, "counts": ["1?", "0?"]})])
    assert state.poll is not None
    assert state.poll.counts == (1, 0)
    assert state.poll.obscured
    state = feed(state, [("updatePoll", {**POLL, "counts": [0, 1]}), ("closePoll", None)])
    assert state.poll is None


def test_playback_position_extrapolates_from_the_frame_time() -> None:
    state = feed(joined(items=[item(1, "a", seconds=40)]), [("setCurrent", 1)])
    state = apply(state, protocol.parse("changeMedia", change_media("a", 40)), 100.0)
    assert not state.playing
    assert state.position_now(103.0) == -3
    state = apply(state, protocol.parse("mediaUpdate", {"currentTime": 0, "paused": False}), 103.0)
    assert state.playing
    assert state.position_now(110.5) == pytest.approx(7.5)
    assert state.position_now(500.0) == 40  # capped at the item's length
    state = apply(state, protocol.parse("mediaUpdate", {"currentTime": 10.5, "paused": True}), 120.0)
    assert state.position_now(200.0) == 10.5
    live = apply(state, protocol.parse("changeMedia", change_media("b", 0, current=0, paused=False)), 300.0)
    assert live.playback is not None
    assert live.playback.media.live
    assert not live.playing
    assert ChannelState().position_now(1.0) is None
    # A mediaUpdate with nothing loaded has nothing to anchor to.
    update = protocol.parse("mediaUpdate", {"currentTime": 5, "paused": False})
    assert apply(ChannelState(), update) == ChannelState()


# The end of the playlist: what plays must come from the replica ---------------------------------

def playing_one_temp() -> ChannelState:
    state = joined(items=[item(1, "a")], current=1)
    assert state.playing
    return state


def test_last_temp_item_ends_with_only_delete_and_meta() -> None:
    # Measured: the server sends delete + setPlaylistMeta {count: 0}, no changeMedia.
    state = feed(playing_one_temp(), [("delete", {"uid": 1}),
                                       ("setPlaylistMeta", {"count": 0, "rawTime": 0, "time": "00:00"})])
    assert state.current is None
    assert state.playback is None
    assert not state.playing
    assert state.items == ()


def test_end_of_playlist_when_we_may_not_see_the_playlist() -> None:
    # Without seeplaylist only setPlaylistMeta arrives; count 0 is then the only signal.
    state = feed(ChannelState(), [("setPlaylistMeta", {"count": 1, "rawTime": 30, "time": "00:30"}),
                                  ("setCurrent", 7),
                                  ("changeMedia", change_media("a", current=1, paused=False))])
    assert state.playing
    assert state.current_uid is None
    state = feed(state, [("setPlaylistMeta", {"count": 0, "rawTime": 0, "time": "00:00"})])
    assert not state.playing
    assert state.playback is None


def test_a_single_non_temp_item_loops() -> None:
    state = joined(items=[item(1, "a", temp=False, seconds=10)], current=1)
    again = feed(state, [("setCurrent", 1), ("changeMedia", change_media("a", 10))], at=50.0)
    assert again.current_uid == 1
    assert again.playback is not None
    assert again.playback.at == 50.0
    assert again.position_now(51.0) == -3
    assert not again.playing
    again = feed(again, [("mediaUpdate", {"currentTime": 0, "paused": False})], at=53.0)
    assert again.playing
    assert again.items == state.items


def test_clear_playlist_stops_playback() -> None:
    state = joined(items=[item(1, "a"), item(2, "b")], current=2)
    cleared = feed(state, [("playlist", []),
                           ("setPlaylistMeta", {"count": 0, "rawTime": 0, "time": "00:00"})])
    assert cleared.items == ()
    assert cleared.current is None
    assert not cleared.playing


def test_deleting_the_current_item_then_the_next_plays() -> None:
    state = joined(items=[item(1, "a"), item(2, "b")], current=1)
    gap = feed(state, [("delete", {"uid": 1})])
    assert gap.current is None
    assert not gap.playing
    nxt = feed(gap, [("setPlaylistMeta", {"count": 1, "rawTime": 30, "time": "00:30"}),
                     ("setCurrent", 2), ("changeMedia", change_media("b"))])
    assert nxt.current_uid == 2
    assert nxt.playback is not None
    assert nxt.playback.media.id == "b"
    # Deleting another item keeps the current one.
    other = feed(state, [("delete", {"uid": 2})])
    assert other.current_uid == 1
    assert other.playing


def test_shuffle_gives_new_uids_and_keeps_the_current_media() -> None:
    state = joined(items=[item(0, "a"), item(2, "b"), item(3, "c")], current=2)
    shuffled = feed(state, [("playlist", [item(4, "b"), item(5, "c"), item(6, "a")]),
                            ("setCurrent", 4), ("changeMedia", change_media("b", current=12, paused=False))])
    assert [it.uid for it in shuffled.items] == [4, 5, 6]
    assert shuffled.current_uid == 4


def test_unregistered_permissions_fixture_matches_the_notes() -> None:
    assert "kick" not in UNREGISTERED_PERMISSIONS
    assert UNREGISTERED_PERMISSIONS["playlistlock"] == 2


def test_evolve_refuses_a_field_that_does_not_exist() -> None:
    from daz.cytube.channel.state import evolve

    with pytest.raises(TypeError, match="usercnt"):
        evolve(ChannelState(), usercnt=3)
    assert evolve(ChannelState(), usercount=3).usercount == 3
