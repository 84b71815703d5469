"""The channel replica: reducer events/s and memory, side by side with a plain mutable replica.

Usage: .venv/bin/python bench/channel.py [--items 4000] [--users 500] [--events 200000]

Builds a channel of ``--items`` playlist items and ``--users`` users from a join sequence, then
feeds a mix of live frames as a busy channel sends them. Three ways are timed on the same parsed
events: ``apply`` (the immutable reducer), ``ChannelReplica.observe`` (reducer + the channel.*
event diff, what daz runs), and the obvious optimum, a mutable dict/list replica updated in place
(no snapshots: a reader could see it change under it). Memory is tracemalloc's retained size of
the built replica. Prints figures; never asserts (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from daz.cytube import channel_wire as cw
from daz.cytube import protocol as p
from daz.cytube.channel import ChannelState, apply, apply_all
from daz.cytube.channel.replica import ChannelReplica

PERMISSIONS = {"seeplaylist": -1, "playlistadd": 1.5, "playlistdelete": 2, "kick": 1.5, "chat": 0}


def media(i: int) -> dict[str, Any]:
    return {"id": f"rtmp://example.com/live/{i}", "title": f"Item number {i}",
            "seconds": 180 + i % 600, "duration": "03:00", "type": "rt", "meta": {}}


def item(uid: int) -> dict[str, Any]:
    return {"media": media(uid), "uid": uid, "temp": uid % 3 == 0, "queueby": f"user{uid % 50}"}


def user(i: int) -> dict[str, Any]:
    return {"name": f"user{i}", "rank": i % 4, "profile": {"image": "", "text": ""},
            "meta": {"afk": False, "muted": False}}


def join_frames(items: int, users: int) -> list[tuple[str, Any]]:
    return [
        ("setPermissions", PERMISSIONS), ("setPlaylistLocked", True),
        ("channelOpts", {"allow_voteskip": True}),
        ("setPlaylistMeta", {"count": items, "rawTime": 0, "time": "00:00"}),
        ("playlist", [item(uid) for uid in range(items)]),
        ("setCurrent", 0), ("changeMedia", {**media(0), "currentTime": 10.0, "paused": False}),
        ("userlist", [user(i) for i in range(users)]), ("usercount", users),
        ("rank", 1), ("login", {"success": True, "name": "user1"}), ("rank", 1),
    ]


def live_frames(count: int, items: int, users: int) -> list[tuple[str, Any]]:
    """A busy channel's mix: mostly mediaUpdate and user churn, some queue/delete and poll votes."""
    poll = {"title": "t", "options": ["a", "b"], "counts": [0, 0], "initiator": "user1", "timestamp": 1}
    frames: list[tuple[str, Any]] = [("newPoll", poll)]
    next_uid = items
    last = items - 1  # the uid at the end of the playlist
    for n in range(count):
        kind = n % 10
        if kind in (0, 1, 2):
            frames.append(("mediaUpdate", {"currentTime": float(n % 170), "paused": False}))
        elif kind == 3:
            frames.append(("addUser", user(users + n)))
        elif kind == 4:
            frames.append(("userLeave", {"name": f"user{users + n - 1}"}))
        elif kind == 5:
            frames.append(("setAFK", {"name": f"user{n % users}", "afk": n % 20 == 5}))
        elif kind == 6:  # `queue` at the end (the server's "after" is the last uid)
            frames.append(("queue", {"item": item(next_uid), "after": last}))
            last = next_uid
            next_uid += 1
        elif kind == 7:  # a delete somewhere in the middle (the list stays ~--items long)
            frames.append(("delete", {"uid": items // 2 + n // 10}))
        elif kind == 8:
            frames.append(("updatePoll", {**poll, "counts": [n % 7, n % 5]}))
        else:
            frames.append(("usercount", users + n % 7))
    return frames


class MutableReplica:
    """The optimum to compare with: one mutable model updated in place, wire dicts kept as they came."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.items: list[dict[str, Any]] = []
        self.uids: list[int] = []  # searched at C speed, like the immutable replica's uid tuple
        self.by_uid: dict[int, dict[str, Any]] = {}
        self.playback: dict[str, Any] | None = None
        self.poll: dict[str, Any] | None = None
        self.usercount = 0

    def handle(self, name: str, data: Any) -> None:
        if name == "mediaUpdate" and self.playback is not None:
            self.playback.update(data)
        elif name == "addUser":
            self.users[data["name"].lower()] = data
        elif name == "userLeave":
            self.users.pop(data["name"].lower(), None)
        elif name == "setAFK":
            u = self.users.get(data["name"].lower())
            if u is not None:
                u["meta"]["afk"] = data["afk"]
        elif name == "queue":
            it = data["item"]
            after = data["after"]
            if after == "prepend":
                pos = 0
            elif self.uids and after == self.uids[-1]:
                pos = len(self.uids)
            else:
                pos = self.uids.index(after) + 1 if after in self.by_uid else len(self.uids)
            self.items.insert(pos, it)
            self.uids.insert(pos, it["uid"])
            self.by_uid[it["uid"]] = it
        elif name == "delete":
            uid = data["uid"]
            if self.by_uid.pop(uid, None) is not None:
                pos = self.uids.index(uid)
                del self.items[pos]
                del self.uids[pos]
        elif name in ("newPoll", "updatePoll"):
            self.poll = data
        elif name == "usercount":
            self.usercount = data
        elif name == "playlist":
            self.items = list(data)
            self.uids = [x["uid"] for x in data]
            self.by_uid = {x["uid"]: x for x in data}
        elif name == "userlist":
            self.users = {u["name"].lower(): u for u in data}
        elif name == "changeMedia":
            self.playback = dict(data)


def retained(build: Callable[[], object]) -> tuple[object, int]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    obj = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return obj, after - before


def rate(label: str, events: int, seconds: float) -> None:
    print(f"  {label:<44} {events / seconds:>12,.0f} events/s  ({seconds / events * 1e6:.2f} µs/event)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()

    join = join_frames(args.items, args.users)
    parsed_join = [p.parse(n, d) for n, d in join]
    assert not any(isinstance(e, p.Malformed) for e in parsed_join)

    def build_immutable() -> ChannelState:
        # Fresh frames, dropped after parsing: what stays is what the replica keeps (strings too).
        frames = join_frames(args.items, args.users)
        return apply_all(ChannelState(), [p.parse(n, d) for n, d in frames])

    def build_mutable(frames: list[tuple[str, Any]] | None = None) -> MutableReplica:
        m = MutableReplica()
        for n, d in frames if frames is not None else join_frames(args.items, args.users):
            m.handle(n, d)
        return m

    state, immutable_bytes = retained(build_immutable)
    _, mutable_bytes = retained(build_mutable)
    assert isinstance(state, ChannelState)
    print(f"channel of {args.items} items, {args.users} users: retained memory (tracemalloc)")
    print(f"  immutable ChannelState (parsed into frozen slots objects): {immutable_bytes / 1024:>7,.0f} KiB")
    print(f"  mutable replica keeping the wire dicts (optimum for speed): {mutable_bytes / 1024:>6,.0f} KiB")

    frames = live_frames(args.events, args.items, args.users)
    events = [p.parse(n, d) for n, d in frames]
    kinds = {type(e).__name__ for e in events}
    assert not any(isinstance(e, p.Malformed | p.GenericEvent) for e in events), kinds
    print(f"{len(events):,} live frames (mediaUpdate 30 %, user join/leave/afk 30 %, queue/delete 20 %, "
          "poll votes 10 %, usercount 10 %)")

    # Every timed loop starts from the same GC state: the built channel and the inputs are old
    # objects by then in a long-running process, not young ones the collector keeps rescanning.
    gc.collect()
    gc.freeze()
    start = time.perf_counter()
    s = state
    for e in events:
        s = apply(s, e, 1.0)
    rate("apply (immutable reducer)", len(events), time.perf_counter() - start)

    replica = ChannelReplica("bench", lambda name, data: None)
    replica.connection_started()
    for e in parsed_join:
        replica.observe(e, 0.0)
    assert replica.live
    start = time.perf_counter()
    for e in events:
        replica.observe(e, 1.0)
    rate("ChannelReplica.observe (+ channel.* diff)", len(events), time.perf_counter() - start)

    start = time.perf_counter()
    for n, d in frames:
        p.parse(n, d)
    rate("protocol.parse alone", len(frames), time.perf_counter() - start)

    m = build_mutable(join)
    start = time.perf_counter()
    for n, d in frames:
        m.handle(n, d)
    rate("mutable replica, in place (optimum)", len(frames), time.perf_counter() - start)

    per_kind: dict[str, list[float]] = {}
    s = state
    for e in events[: min(len(events), 50_000)]:
        t0 = time.perf_counter()
        s = apply(s, e, 1.0)
        per_kind.setdefault(type(e).__name__, []).append(time.perf_counter() - t0)
    print("  apply per event type (median µs):",
          ", ".join(f"{k} {sorted(v)[len(v) // 2] * 1e6:.1f}" for k, v in sorted(per_kind.items())))
    _ = cw  # the wire types are what parse returns; imported for readers of this file


if __name__ == "__main__":
    main()
