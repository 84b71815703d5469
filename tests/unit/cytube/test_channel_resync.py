"""The replica across connections: built per connection, swapped in only when complete, diffed."""

from __future__ import annotations

from typing import Any

import pytest
from channel_payloads import change_media, item, join_sequence, user
from immutables import Map
from structlog.testing import capture_logs

from daz.cytube import protocol
from daz.cytube.channel import ChannelState, User
from daz.cytube.channel.replica import ChannelReplica
from daz.cytube.channel.sync import JoinProgress, complete, diff, step

POLL = {"title": "Lunch?", "options": ["a", "b"], "counts": [0, 0], "initiator": "owner1", "timestamp": 5}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        self.events.append((name, data))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [d for n, d in self.events if n == name]

    def names(self) -> list[str]:
        return [n for n, _ in self.events]


def connect(replica: ChannelReplica, frames: list[tuple[str, Any]], at: float = 0.0) -> None:
    replica.connection_started()
    for name, data in frames:
        replica.observe(protocol.parse(name, data), at)


def test_the_replica_is_published_only_once_the_join_is_complete() -> None:
    rec = Recorder()
    replica = ChannelReplica("lobby", rec)
    frames = join_sequence(items=[item(1, "a")], current=1, users=[user("u1")])
    replica.connection_started()
    complete_at = None
    for index, (name, data) in enumerate(frames):
        replica.observe(protocol.parse(name, data), 0.0)
        if replica.snapshot is not None and complete_at is None:
            complete_at = index
    # Complete at the rank that follows our login's success (addUser for us came before it).
    assert complete_at is not None
    assert frames[complete_at][0] == "rank"
    assert frames[complete_at - 2][0] == "login"
    assert rec.names() == ["channel.synced"], "the frames after it (the re-sent playlist) changed nothing"
    snap = replica.snapshot
    assert snap is not None
    assert snap.user("bot") is not None
    assert [it.uid for it in snap.items] == [1]


@pytest.mark.parametrize("missing", ["setPermissions", "userlist", "login", "addUser"])
def test_an_incomplete_join_is_never_published(missing: str) -> None:
    rec = Recorder()
    replica = ChannelReplica("lobby", rec)
    frames = [f for f in join_sequence(users=[user("u1")]) if f[0] != missing]
    connect(replica, frames)
    assert replica.snapshot is None
    assert rec.events == []


def test_rank_before_login_does_not_count() -> None:
    progress = JoinProgress()
    for name, data in [("rank", 1), ("setPermissions", {}), ("userlist", [user("bot")]),
                       ("login", {"success": True, "name": "bot"})]:
        progress = step(progress, protocol.parse(name, data))
    state = ChannelState(users=Map({"bot": User("bot", 1)}), self_name="bot")
    assert not complete(progress, state)
    assert complete(step(progress, protocol.parse("rank", 2)), state)


def test_a_guest_login_completes_without_a_rank_after_it() -> None:
    # CyTube 3.86, measured: a guest gets `rank 0` BEFORE `login {guest: true}`, then its addUser,
    # and never a rank after it (only accounts get the channel-rank lookup).
    replica = ChannelReplica("lobby", Recorder())
    frames = [f for f in join_sequence(registered=False) if f[0] in ("setPermissions", "userlist")]
    frames += [("rank", 0), ("login", {"success": True, "name": "bot", "guest": True}),
               ("addUser", user("bot", 0))]
    connect(replica, frames)
    assert replica.snapshot is not None
    assert replica.snapshot.self_rank == 0
    assert replica.snapshot.user("bot") is not None


def test_an_account_login_still_waits_for_the_rank_after_it() -> None:
    replica = ChannelReplica("lobby", Recorder())
    frames = [f for f in join_sequence() if f[0] in ("setPermissions", "userlist")]
    frames += [("rank", 1), ("login", {"success": True, "name": "bot"}), ("addUser", user("bot", 1))]
    connect(replica, frames)
    assert replica.snapshot is None


def test_a_channel_ranked_account_resyncs_without_a_phantom_rank_change() -> None:
    # CyTube 3.86, an account with channel rank 4: rank 1, login, addUser (rank 1), rank 4, userlist,
    # playlist, and only then setUserRank 4. The replica completes at `rank 4`.
    def frames() -> list[tuple[str, Any]]:
        burst = [f for f in join_sequence() if f[0] in ("setPermissions", "userlist")]
        return [*burst, ("rank", 1), ("login", {"success": True, "name": "bot"}), ("addUser", user("bot", 1)),
                ("rank", 4), ("userlist", [user("bot", 4)]), ("setUserRank", {"name": "bot", "rank": 4})]
    rec = Recorder()
    replica = ChannelReplica("lobby", rec)
    connect(replica, frames())
    first = replica.snapshot
    assert first is not None
    assert first.user("bot") == User("bot", 4)
    connect(replica, frames())
    resynced = rec.named("room.resynced")
    assert len(resynced) == 1
    assert resynced[0]["diff"].rank_changed == ()


def test_unregistered_channel_completes_and_is_marked() -> None:
    replica = ChannelReplica("lobby", Recorder())
    connect(replica, join_sequence(registered=False))
    assert replica.snapshot is not None
    assert not replica.snapshot.registered
    assert replica.snapshot.permission("kick") is None


def test_plugins_keep_the_old_replica_until_the_new_one_is_complete_then_one_resync() -> None:
    rec = Recorder()
    replica = ChannelReplica("lobby", rec)
    connect(replica, join_sequence(items=[item(1, "a"), item(2, "b")], current=1,
                                   users=[user("u1"), user("u2", 1)]))
    before = replica.snapshot
    replica.connection_ended()
    assert replica.snapshot is before
    assert not replica.live
    # While away: u3 and u4 joined, u1 left, u2 was promoted, "a" ended (temp), "c" was added,
    # and a poll opened. The fresh join sequence says so.
    frames = join_sequence(items=[item(2, "b"), item(3, "c")], current=2, poll=POLL,
                           users=[user("u2", 2), user("u3"), user("u4")])
    replica.connection_started()
    for name, data in frames:
        replica.observe(protocol.parse(name, data), 10.0)
        if replica.snapshot is not before:
            break
        assert replica.snapshot is before, "a half-built replica must never be visible"
    assert rec.names().count("room.resynced") == 1
    change = rec.named("room.resynced")[0]["diff"]
    assert sorted(change.users_joined) == ["u3", "u4"]
    assert change.users_left == ("u1",)
    assert [(r.name, r.old, r.new) for r in change.rank_changed] == [("u2", 1, 2)]
    assert change.media_changed
    assert (change.media_before.id, change.media_after.id) == ("a", "b")
    assert [it.media.id for it in change.items_added] == ["c"]
    assert [it.media.id for it in change.items_removed] == ["a"]
    assert change.poll_opened is not None
    assert change.poll_closed is None
    assert rec.named("room.resynced")[0]["summary"]["users_left"] == ["u1"]


def test_a_resync_with_nothing_changed_reports_an_empty_diff() -> None:
    rec = Recorder()
    replica = ChannelReplica("lobby", rec)
    seq = join_sequence(items=[item(1, "a")], current=1, users=[user("u1")], poll=POLL)
    connect(replica, seq)
    replica.connection_ended()
    connect(replica, seq, at=50.0)
    change = rec.named("room.resynced")[0]["diff"]
    assert change.empty
    assert not change.media_changed


def test_items_are_compared_by_media_across_a_server_restart() -> None:
    old = ChannelReplica("x", Recorder())
    connect(old, join_sequence(items=[item(1, "a"), item(2, "b")]))
    new = ChannelReplica("x", Recorder())
    connect(new, join_sequence(items=[item(0, "a"), item(1, "b")]))  # renumbered by the restart
    assert old.snapshot is not None
    assert new.snapshot is not None
    change = diff(old.snapshot, new.snapshot)
    assert change.items_added == ()
    assert change.items_removed == ()


def test_live_frames_become_fine_grained_events() -> None:
    rec = Recorder()
    replica = ChannelReplica("lobby", rec)
    connect(replica, join_sequence(items=[item(1, "a", seconds=20)], current=1, users=[user("u1")]))
    rec.events.clear()
    for name, data in [
        ("addUser", user("u2")), ("setUserRank", {"name": "u2", "rank": 2}), ("userLeave", {"name": "u1"}),
        ("queue", {"item": item(2, "b"), "after": 1}), ("newPoll", POLL),
        ("updatePoll", {**POLL, "counts": [1, 0]}), ("closePoll", None),
        ("delete", {"uid": 1}), ("setPlaylistMeta", {"count": 1, "rawTime": 30, "time": "00:30"}),
        ("setCurrent", 2), ("changeMedia", change_media("b")),
        ("mediaUpdate", {"currentTime": 0, "paused": False}),
        ("setLeader", "u2"),
    ]:
        replica.observe(protocol.parse(name, data), 1.0)
    assert rec.names() == [
        "channel.user.joined", "channel.user.rank_changed", "channel.user.left",
        "channel.playlist.changed", "channel.poll.opened", "channel.poll.updated", "channel.poll.closed",
        "channel.playlist.changed", "channel.media.changed",  # the delete of the current item
        "channel.media.changed",  # changeMedia of the next
        "channel.leader.changed",
    ]
    assert all(d["room"] == "lobby" for _, d in rec.events)
    ended = rec.events[8][1]
    assert ended["media"] is None
    assert ended["before"].id == "a"
    assert rec.events[9][1]["media"].id == "b"


def test_what_plays_for_the_watchdog_is_the_current_connection_s() -> None:
    replica = ChannelReplica("lobby", Recorder())
    assert not replica.playing
    connect(replica, join_sequence(items=[item(1, "a")], current=1))
    assert replica.playing
    replica.connection_ended()
    assert not replica.playing, "no connection: nothing promises mediaUpdate"
    replica.connection_started()
    replica.observe(protocol.parse("changeMedia", change_media("a", current=4, paused=False)), 0.0)
    assert replica.playing, "during the join the half-built replica already knows media plays"
    replica.observe(protocol.parse("setPlaylistMeta", {"count": 0, "rawTime": 0, "time": "00:00"}), 0.0)
    assert not replica.playing


def test_a_reducer_bug_is_logged_and_the_replica_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    replica = ChannelReplica("lobby", Recorder())
    connect(replica, join_sequence(users=[user("u1")]))
    snap = replica.snapshot

    def broken(state: ChannelState, event: object, at: float) -> ChannelState:
        raise RuntimeError("bug")

    monkeypatch.setattr("daz.cytube.channel.replica.apply", broken)
    replica.observe(protocol.parse("addUser", user("u9")), 0.0)
    assert replica.snapshot is snap


def test_the_bots_own_rank_changed_while_away_is_in_the_resync() -> None:
    # A moderator promoted (or demoted) the bot's account while it was disconnected: the resync
    # must say so, and the new replica's own rank is the one permission checks use from then on.
    rec = Recorder()
    replica = ChannelReplica("lobby", rec)
    connect(replica, join_sequence(users=[user("u1")]))
    assert replica.snapshot is not None
    assert replica.snapshot.self_rank == 1
    replica.connection_ended()
    promoted = [
        (name, 2 if name == "rank" else user("bot", 2) if name == "addUser"
         else {"name": "bot", "rank": 2} if name == "setUserRank" else data)
        for name, data in join_sequence(users=[user("u1")])
    ]
    connect(replica, promoted, at=5.0)
    change = rec.named("room.resynced")[0]["diff"]
    assert [(r.name, r.old, r.new) for r in change.rank_changed] == [("bot", 1, 2)]
    assert replica.snapshot.self_rank == 2
    assert rec.named("room.resynced")[0]["summary"]["rank_changed"] == [{"name": "bot", "old": 1, "new": 2}]


def test_the_resync_log_line_stays_bounded_for_a_big_playlist() -> None:
    # An unregistered channel's server restart loses a 4,000-item playlist: the room.resynced log
    # line says how many and shows a few, it does not carry 4,000 entries (the bus event does).
    rec = Recorder()
    replica = ChannelReplica("lobby", rec)
    connect(replica, join_sequence(items=[item(n, f"m{n}") for n in range(1, 4001)], users=[user("u1")]))
    replica.connection_ended()
    with capture_logs() as logs:
        connect(replica, join_sequence(users=[user("u1")]), at=5.0)
    line = next(entry for entry in logs if entry["event"] == "room.resynced")
    assert line["items_removed_count"] == 4000
    assert len(line["items_removed"]) <= 10
    assert len(rec.named("room.resynced")[0]["diff"].items_removed) == 4000
