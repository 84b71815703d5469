"""Property tests of the channel reducer: any sequence of server frames, well-formed or not, keeps
the replica's invariants, and a malformed frame never changes it."""

from __future__ import annotations

from typing import Any

from channel_payloads import change_media, item, user
from hypothesis import given, settings
from hypothesis import strategies as st

from daz.cytube import channel_wire as cw
from daz.cytube import protocol
from daz.cytube.channel import ChannelState, apply, sync

UIDS = st.integers(min_value=0, max_value=12)
NAMES = st.sampled_from(["alice", "Alice", "bob", "carol", "bot", "BOT"])
MEDIA_IDS = st.sampled_from(["a", "b", "c"])
META = st.fixed_dictionaries(
    {"count": st.integers(0, 5), "rawTime": st.integers(0, 100), "time": st.just("0")})
POLL = st.integers(0, 4).flatmap(lambda n: st.fixed_dictionaries({
    "title": st.text(max_size=5), "options": st.lists(st.text(max_size=3), min_size=n, max_size=n),
    "counts": st.lists(st.one_of(st.integers(0, 9), st.sampled_from(["?", "2?"])), min_size=n, max_size=n),
    "initiator": NAMES, "timestamp": st.integers(0, 10**13),
}))
ITEM = st.builds(lambda uid, mid, temp: item(uid, mid, temp=temp), UIDS, MEDIA_IDS, st.booleans())

FRAMES: st.SearchStrategy[tuple[str, Any]] = st.one_of(
    st.tuples(st.just("playlist"), st.lists(ITEM, max_size=6)),
    st.tuples(st.just("queue"), st.fixed_dictionaries(
        {"item": ITEM, "after": st.one_of(UIDS, st.just("prepend"))})),
    st.tuples(st.just("delete"), st.fixed_dictionaries({"uid": UIDS})),
    st.tuples(st.just("moveVideo"), st.fixed_dictionaries(
        {"from": UIDS, "after": st.one_of(UIDS, st.sampled_from(["prepend", "append"]))})),
    st.tuples(st.just("setTemp"), st.fixed_dictionaries({"uid": UIDS, "temp": st.booleans()})),
    st.tuples(st.just("setCurrent"), UIDS),
    st.tuples(st.just("setPlaylistMeta"), META),
    st.tuples(st.just("changeMedia"), st.builds(
        change_media, MEDIA_IDS, st.sampled_from([0, 10, 30]), st.sampled_from([-3, 0, 5]), st.booleans())),
    st.tuples(st.just("mediaUpdate"), st.fixed_dictionaries(
        {"currentTime": st.floats(-3, 100), "paused": st.booleans()})),
    st.tuples(st.just("userlist"), st.lists(st.builds(user, NAMES, st.sampled_from([0, 1, 2])), max_size=5)),
    st.tuples(st.just("addUser"), st.builds(user, NAMES, st.sampled_from([-1, 0, 1, 255]))),
    st.tuples(st.just("userLeave"), st.fixed_dictionaries({"name": NAMES})),
    st.tuples(st.just("setUserRank"),
              st.fixed_dictionaries({"name": NAMES, "rank": st.sampled_from([1, 1.5, 3])})),
    st.tuples(st.just("setAFK"), st.fixed_dictionaries({"name": NAMES, "afk": st.booleans()})),
    st.tuples(st.just("setLeader"), st.one_of(NAMES, st.just(""))),
    st.tuples(st.just("usercount"), st.integers(-3, 20)),
    st.tuples(st.just("newPoll"), POLL),
    st.tuples(st.just("updatePoll"), POLL),
    st.tuples(st.just("closePoll"), st.none()),
    st.tuples(st.just("rank"), st.sampled_from([-1, 0, 1, 2, 255])),
    st.tuples(st.just("setPlaylistLocked"), st.booleans()),
    # Wrong shapes for modelled events, and events the replica does not model.
    st.tuples(st.sampled_from(["queue", "delete", "playlist", "setCurrent", "newPoll", "userlist",
                               "setPermissions", "changeMedia", "somethingNew", "drinkCount"]),
              st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))),
)


def check_invariants(state: ChannelState) -> None:
    uids = [it.uid for it in state.items]
    assert len(uids) == len(set(uids)), "uids are unique"
    assert {uid: state.item(uid) for uid in uids} == {it.uid: it for it in state.items}
    assert [state.index(uid) for uid in uids] == list(range(len(uids)))
    assert state.index(-1) is None
    assert state.current_uid is None or state.item(state.current_uid) is not None, \
        "the current item is on the playlist or there is none"
    assert all(key == u.name.lower() for key, u in state.users.items()), "one user per name"
    assert state.usercount >= 0
    if state.poll is not None:
        assert len(state.poll.counts) == len(state.poll.options)


def check_live_events(old: ChannelState, new: ChannelState, event: object) -> None:
    """The live events' per-frame shortcuts agree with comparing the whole states."""
    events = sync.live_events(old, new, event)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for name, data in events:
        by_name.setdefault(name, []).append(data)
    full = sync.diff(old, new)
    assert sorted(d["name"] for d in by_name.get("channel.user.joined", [])) == sorted(full.users_joined)
    assert sorted(d["name"] for d in by_name.get("channel.user.left", [])) == sorted(full.users_left)
    assert [(d["name"], d["new"]) for d in by_name.get("channel.user.rank_changed", [])] == [
        (r.name, r.new) for r in full.rank_changed]
    changed = by_name.get("channel.playlist.changed", [])
    assert len(changed) == (0 if old.items is new.items else 1)
    if changed:
        def keys(items: tuple[Any, ...]) -> list[tuple[str, str]]:
            return sorted((it.media.type, it.media.id) for it in items)
        added, removed = keys(changed[0]["added"]), keys(changed[0]["removed"])
        net_added = [k for k in added if k not in removed or added.count(k) > removed.count(k)]
        assert sorted(set(net_added)) == sorted({(it.media.type, it.media.id) for it in full.items_added})


@settings(max_examples=300, deadline=None)
@given(st.lists(FRAMES, max_size=40))
def test_random_frame_sequences_keep_the_invariants(frames: list[tuple[str, Any]]) -> None:
    state = ChannelState()
    for step, (name, data) in enumerate(frames):
        event = protocol.parse(name, data)
        after = apply(state, event, float(step))
        if isinstance(event, protocol.Malformed | protocol.GenericEvent):
            assert after is state, f"{name} ({type(event).__name__}) must not change the replica"
        check_invariants(after)
        check_live_events(state, after, event)
        if isinstance(event, cw.PlaylistMeta) and event.count == 0:
            assert after.playback is None, "an empty playlist plays nothing"
        if isinstance(event, cw.ItemDeleted) and event.uid == state.current_uid:
            assert after.playback is None, "the current item was deleted"
            assert after.current_uid is None
        state = after
