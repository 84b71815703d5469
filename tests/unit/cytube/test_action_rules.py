"""Actions, pure: local validation, journal records, permissions (incl. absent keys), the send decision
with in-doubt reconciliation, reply matching and the refusal table."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daz.cytube import channel_wire as cw
from daz.cytube.action_replies import Confirmed, Refused, classify_refusal, match_reply
from daz.cytube.action_rules import Plan, check_permission, decide_send, effect_holds
from daz.cytube.actions import (
    ACTION_TYPES,
    Action,
    AssignLeader,
    Ban,
    ClosePoll,
    DeleteMedia,
    JumpTo,
    Kick,
    MoveMedia,
    Mute,
    NewPoll,
    QueueMedia,
    SetAfk,
    SetTemp,
    Skip,
    Unban,
    UnbanName,
    Unmute,
    Vote,
    VoteSkip,
    action_from_record,
    to_record,
)
from daz.cytube.channel import ChannelState, apply_all
from daz.cytube.protocol import LoginResult, Rank, UserJoined, UserList
from daz.errors import ActionInvalid, ActionNotPermitted, ActionRefused, DazError
from daz.testing.fake_cytube.permissions import REGISTERED_PERMISSIONS, UNREGISTERED_PERMISSIONS

# Default permission sets of CyTube 3.86 (permissions.js), registered and unregistered channels: the
# fake server's tables, which its own tests pin to the real server.
REGISTERED = dict(REGISTERED_PERMISSIONS)
UNREGISTERED = dict(UNREGISTERED_PERMISSIONS)
BOT = "DazBot"


def user(name: str, rank: float, *, afk: bool = False, muted: bool = False) -> UserJoined:
    return UserJoined(name, rank, afk=afk, muted=muted)


def entry(
    uid: int, media_type: str, media_id: str, *, temp: bool = True, queueby: str = ""
) -> cw.PlaylistItem:
    return cw.PlaylistItem(uid, cw.Media(media_id, media_type, media_id, 0), temp, queueby)


def poll_state(title: str, initiator: str, options: tuple[str, ...] = ()) -> cw.PollState:
    return cw.PollState(True, title, options, tuple(0 for _ in options), False, initiator, 1)


def facts(
    rank: float = 2,
    perms: dict[str, float] | None = None,
    *,
    playlist_locked: bool = True,
    playlist: tuple[cw.PlaylistItem, ...] = (),
    current_uid: int | None = None,
    poll: cw.PollState | None = None,
    users: tuple[UserJoined, ...] = (),
    leader: str | None = None,
    options: dict[str, Any] | None = None,
) -> ChannelState:
    """A replica built the way the session builds it: by the reducer, from typed server events."""
    events: list[object] = [
        LoginResult(True, BOT, False, None),
        Rank(rank),
        cw.PermissionsSet(tuple((perms if perms is not None else REGISTERED).items())),
        cw.PlaylistLocked(playlist_locked),
        cw.PlaylistReplaced(playlist),
        UserList(users or (user(BOT, rank), user("alice", 1))),
    ]
    if current_uid is not None:
        events.append(cw.CurrentSet(current_uid))
    if poll is not None:
        events.append(poll)
    if leader is not None:
        events.append(cw.LeaderSet(leader))
    if options is not None:
        events.append(cw.ChannelOptions(tuple(options.items())))
    return apply_all(ChannelState(), events)


PLAYLIST = (
    entry(1, "rt", "rtmp://x/a", temp=True, queueby=BOT),
    entry(2, "rt", "rtmp://x/b"),
    entry(3, "yt", "abc", temp=False),
)


# validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        (QueueMedia("zz", "x"), "unknown media type 'zz'"),
        (QueueMedia("yp", "PLx"), "a YouTube playlist"),
        (QueueMedia("yt", " "), "media_id must be"),
        (QueueMedia("yt", "x", position="top"), "position must be"),  # type: ignore[arg-type]
        (QueueMedia("yt", "x", title="T"), "title is kept only for types cu and fi"),
        (QueueMedia("fi", "https://x/a.mp4", title="t" * 101), "title must be 1-100 characters"),
        (QueueMedia("fi", "https://x/a.mp4", title=" "), "title must be 1-100 characters"),
        (QueueMedia("yt", "x", duration=10), "duration is honoured only for live types"),
        (QueueMedia("rt", "rtmp://x", duration=0), "duration must be a positive"),
        (QueueMedia("hl", "http://x/s.m3u8"), "HLS links must start with https://"),
        (QueueMedia("cu", "<b>x</b>"), "must be an <iframe> tag"),
        (DeleteMedia(-1), "uid must be a playlist uid"),
        (DeleteMedia(True), "uid must be"),  # type: ignore[arg-type]
        (MoveMedia(1, 1), "after itself"),
        (MoveMedia(1, "top"), "after must be"),  # type: ignore[arg-type]
        (NewPoll("", ("a",)), "title must be 1-255"),
        (NewPoll("t", ()), "1-50 options, not 0"),
        (NewPoll("t", tuple("x" * 51)), "1-50 options, not 51"),
        (NewPoll("t", ("a", "")), "option 2 must be 1-255"),
        (NewPoll("t", ("a" * 256,)), "option 1 must be 1-255"),
        (NewPoll("t", ("a",), timeout=0), "timeout must be 1-86400"),
        (NewPoll("t", ("a",), timeout=86401), "timeout must be"),
        (Vote(-1), "option must be"),
        (Kick("bad name"), "is not a CyTube user name"),
        (Kick("x" * 21), "not a CyTube user name"),
        (Kick("bob", "two\nlines"), "reason must be one line"),
        (Ban("b<c"), "user name"),
        (Unban(-2, "bob"), "ban_id must be"),
        (AssignLeader("no way"), "user name"),
        # Wrong types from a plugin: one clear error naming the field, never a TypeError traceback
        # and never a payload the server's typecheck would answer with errorMsg (or drop).
        (QueueMedia(["yt"], "x"), "media_type must be a string"),  # type: ignore[arg-type]
        (QueueMedia("rt", "rtmp://x", duration="60"), "duration must be a positive"),  # type: ignore[arg-type]
        (QueueMedia("yt", "x", temp="yes"), "temp must be True or False"),  # type: ignore[arg-type]
        (QueueMedia("fi", "https://x/a.mp4", title=5), "title must be a string"),  # type: ignore[arg-type]
        (NewPoll("t", None), "options must be a list of strings"),  # type: ignore[arg-type]
        (NewPoll("t", "abc"), "options must be a list of strings"),  # type: ignore[arg-type]
        (NewPoll("t", ("a",), obscured="no"), "obscured must be True or False"),  # type: ignore[arg-type]
        (NewPoll("t", ("a",), retain_votes=1), "retain_votes must be True or False"),  # type: ignore[arg-type]
        (Kick("bob", None), "reason must be one line"),  # type: ignore[arg-type]
        (Ban("bob", 5), "reason must be one line"),  # type: ignore[arg-type]
        (SetTemp(1, "yes"), "temp must be True or False"),  # type: ignore[arg-type]
        (SetAfk("yes"), "afk must be True or False"),  # type: ignore[arg-type]
    ],
)
def test_invalid_actions_are_refused_locally(action: Action, problem: str) -> None:
    with pytest.raises(ActionInvalid, match=problem) as info:
        action.validate()
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, DazError)
    assert info.value.retryable is False
    assert str(info.value).startswith(action.kind + ":")


def test_valid_actions_and_their_wire_form() -> None:
    cases: list[tuple[Action, tuple[str, Any]]] = [
        (
            QueueMedia("rt", "rtmp://x/a", duration=30),
            ("queue", {"id": "rtmp://x/a", "type": "rt", "pos": "end", "temp": True, "duration": 30}),
        ),
        (
            QueueMedia("cu", "<iframe src='https://e/x'></iframe>", "next", False, title="Mine"),
            (
                "queue",
                {
                    "id": "<iframe src='https://e/x'></iframe>",
                    "type": "cu",
                    "pos": "next",
                    "temp": False,
                    "title": "Mine",
                },
            ),
        ),
        (DeleteMedia(4), ("delete", 4)),
        (MoveMedia(4, "prepend"), ("moveMedia", {"from": 4, "after": "prepend"})),
        (JumpTo(2), ("jumpTo", 2)),
        (Skip(2), ("playNext", None)),
        (SetTemp(2, False), ("setTemp", {"uid": 2, "temp": False})),
        (VoteSkip(), ("voteskip", None)),
        (
            NewPoll("Lunch?", ("a", "b"), obscured=True, timeout=60),
            ("newPoll", {"title": "Lunch?", "opts": ["a", "b"], "obscured": True, "timeout": 60}),
        ),
        (Vote(1), ("vote", {"option": 1})),
        (ClosePoll(), ("closePoll", None)),
        (Kick("bob", "spam"), ("chatMsg", {"msg": "/kick bob spam", "meta": {}})),
        (Ban("bob"), ("chatMsg", {"msg": "/ban bob", "meta": {}})),
        (Mute("bob"), ("chatMsg", {"msg": "/mute bob", "meta": {}})),
        (Unmute("bob"), ("chatMsg", {"msg": "/unmute bob", "meta": {}})),
        (Unban(7, "bob"), ("unban", {"id": 7, "name": "bob"})),
        (UnbanName("Bob"), ("requestBanlist", None)),  # its first frame; the unbans follow the answer
        (SetAfk(True), ("chatMsg", {"msg": "/afk", "meta": {}})),
        (AssignLeader(""), ("assignLeader", {"name": ""})),
    ]
    assert {type(a) for a, _ in cases} == set(ACTION_TYPES.values())
    for action, wire in cases:
        action.validate()
        assert action.wire() == wire
        assert action_from_record(to_record(action)) == action  # journal round trip


def test_custom_embed_playlist_id_is_the_servers_hash() -> None:
    # customembed.js: id = "cu:" + base64(sha256(input))
    assert QueueMedia("cu", '<iframe src="https://example.com/embed"></iframe>').playlist_id == (
        "cu:"
        + __import__("base64")
        .b64encode(
            __import__("hashlib").sha256(b'<iframe src="https://example.com/embed"></iframe>').digest()
        )
        .decode()
    )


def test_bad_records_are_invalid_not_crashes() -> None:
    for record in (
        {"kind": "nope"},
        {"kind": "delete"},
        {"kind": "delete", "uid": "x"},
        {"kind": "queue", "media_type": "zz", "media_id": "a"},
    ):
        with pytest.raises(ActionInvalid):
            action_from_record(record)


# permissions -------------------------------------------------------------------------------------


def test_the_replicas_permission_rule_is_the_servers() -> None:
    assert facts(1.5).may("kick")
    assert not facts(1).may("kick")
    assert not facts(255, UNREGISTERED, playlist_locked=False).may("kick")  # absent: nobody
    # locked: only the plain key; open: the o-key also grants
    assert not facts(0, playlist_locked=True).may("playlistadd")
    assert facts(0, playlist_locked=False).may("playlistadd")
    assert not facts(255, UNREGISTERED, playlist_locked=False).may("playlistaddrawfile")


@pytest.mark.parametrize(
    ("action", "rank", "perms", "locked", "key", "needed"),
    [
        (DeleteMedia(1), 1, REGISTERED, True, "playlistdelete", 2),
        (Kick("alice"), 1, REGISTERED, True, "kick", 1.5),
        (Kick("alice"), 255, UNREGISTERED, False, "kick", None),
        (Mute("alice"), 3, UNREGISTERED, False, "mute", None),
        (QueueMedia("cm", "http://h/m.json"), 255, UNREGISTERED, False, "playlistaddrawfile", None),
        (QueueMedia("rt", "rtmp://x"), 1, REGISTERED, True, "playlistadd", 1.5),
        (QueueMedia("rt", "rtmp://x"), 1, REGISTERED, False, "playlistaddlive", 1.5),
        (QueueMedia("cu", "<iframe></iframe>"), 2, REGISTERED, True, "playlistaddcustom", 3),
        (QueueMedia("yt", "a", position="next"), 1, REGISTERED, False, "playlistnext", 1.5),
        (NewPoll("t", ("a",)), 1, REGISTERED, True, "pollctl", 1.5),
        (AssignLeader("alice"), 1.5, REGISTERED, True, "leaderctl", 2),
        (Ban("alice"), 1.5, REGISTERED, True, "ban", 2),
        (SetTemp(1, False), 1.5, REGISTERED, True, "settemp", 2),
    ],
)
def test_missing_permission_names_the_key_and_the_rank(  # noqa: PLR0917 - parametrized
    action: Action, rank: float, perms: dict[str, float], locked: bool, key: str, needed: float | None
) -> None:
    denied = check_permission(action, facts(rank, perms, playlist_locked=locked))
    assert isinstance(denied, ActionNotPermitted)
    assert (denied.key, denied.needed, denied.rank, denied.retryable) == (key, needed, rank, False)
    assert repr(key) in str(denied)
    assert ("does not exist in this channel" if needed is None else f"needs rank {needed:g}") in str(denied)


def test_permitted_actions_pass() -> None:
    for action in (
        QueueMedia("rt", "rtmp://x"),
        DeleteMedia(1),
        Kick("alice"),
        NewPoll("t", ("a",)),
        VoteSkip(),
        Vote(0),
    ):
        assert check_permission(action, facts(2)) is None
    assert (
        check_permission(QueueMedia("rt", "rtmp://x"), facts(0, UNREGISTERED, playlist_locked=False)) is None
    )
    assert check_permission(SetAfk(True), facts(-1, {})) is None  # /afk needs no permission


# the send decision ---------------------------------------------------------------------------------


def test_in_doubt_queue_already_on_the_playlist_is_confirmed_not_resent() -> None:
    queued = QueueMedia("rt", "rtmp://x/b")
    state = facts(playlist=PLAYLIST)
    assert decide_send(queued, state, in_doubt=True).plan is Plan.DONE
    fresh = decide_send(queued, state, in_doubt=False)  # a new request for an item already there
    assert fresh.plan is Plan.FAIL
    assert isinstance(fresh.error, ActionRefused)
    assert fresh.error.category == "duplicate"
    assert decide_send(QueueMedia("rt", "rtmp://x/new"), state, in_doubt=True).plan is Plan.SEND
    assert (
        decide_send(queued, facts(playlist=PLAYLIST, options={"allow_dupes": True}), in_doubt=False).plan
        is Plan.SEND
    )


def test_in_doubt_reconciliation_per_kind() -> None:
    poll = poll_state("Best &lt;b&gt;color&lt;/b&gt;?", BOT, ("r", "g"))
    state = facts(
        playlist=PLAYLIST,
        current_uid=2,
        poll=poll,
        leader="alice",
        users=(user(BOT, 2, afk=True), user("alice", 1, muted=True)),
    )
    done = [
        DeleteMedia(9),
        MoveMedia(2, 1),
        MoveMedia(1, "prepend"),
        MoveMedia(3, "append"),
        JumpTo(2),
        Skip(1),
        SetTemp(3, False),
        NewPoll("Best <b>color</b>?", ("r", "g")),
        Kick("gone"),
        Ban("gone"),
        Mute("alice"),
        SetAfk(True),
        AssignLeader("ALICE"),
    ]
    for action in done:
        assert effect_holds(action, state), action
        assert decide_send(action, state, in_doubt=True).plan is Plan.DONE, action
    not_done = [
        DeleteMedia(1),
        MoveMedia(1, 3),
        JumpTo(1),
        Skip(2),
        SetTemp(3, True),
        NewPoll("Other", ("a",)),
        # Same title, other options: the bot's earlier poll is open, not this one (a trivia bot
        # asking "Answer?" round after round must not have round 2 "confirmed" by round 1's poll).
        NewPoll("Best <b>color</b>?", ("blue", "red")),
        ClosePoll(),
        Kick("alice"),
        Unmute("alice"),
        SetAfk(False),
        AssignLeader(""),
        VoteSkip(),
        Vote(0),
        Unban(1, "x"),
    ]
    for action in not_done:
        assert not effect_holds(action, state), action
    assert effect_holds(ClosePoll(), facts())
    assert not effect_holds(
        NewPoll("Best <b>color</b>?", ("r",)), facts(poll=poll_state(poll.title, "alice"))
    )


def test_permission_is_checked_before_preconditions_and_never_sends() -> None:
    decision = decide_send(DeleteMedia(99), facts(1, playlist=PLAYLIST), in_doubt=False)
    assert decision.plan is Plan.FAIL
    assert isinstance(decision.error, ActionNotPermitted)
    assert decision.error.key == "playlistdelete"


@pytest.mark.parametrize(
    ("action", "plan", "reason"),
    [
        (DeleteMedia(9), Plan.FAIL, "uid 9 is not on the playlist"),
        (MoveMedia(1, 9), Plan.FAIL, "uid 9 (after)"),
        (JumpTo(9), Plan.FAIL, "not on the playlist"),
        (SetTemp(3, False), Plan.DONE, "already so"),
        (Skip(1), Plan.DONE, "not playing any more"),
        (Skip(2), Plan.SEND, ""),
        (Vote(0), Plan.FAIL, "no poll is open"),
        (ClosePoll(), Plan.DONE, "no poll is open"),
        (Kick("nobody"), Plan.FAIL, "nobody is not in the room"),
        (Kick(BOT), Plan.FAIL, "to itself"),
        (Kick("mod"), Plan.FAIL, "mod has rank 2, not below the bot's rank 2"),
        (Ban("nobody"), Plan.SEND, ""),
        (Unmute("alice"), Plan.DONE, "already so"),
        (Mute("alice"), Plan.SEND, ""),
        (SetAfk(False), Plan.DONE, "already so"),
        (AssignLeader("nobody"), Plan.FAIL, "not in the room"),
        (AssignLeader(""), Plan.DONE, "already so"),
        (VoteSkip(), Plan.SEND, ""),
    ],
)
def test_preconditions(action: Action, plan: Plan, reason: str) -> None:
    state = facts(
        playlist=PLAYLIST,
        current_uid=2,
        users=(user(BOT, 2), user("alice", 1), user("mod", 2)),
    )
    decision = decide_send(action, state, in_doubt=False)
    assert decision.plan is plan
    assert reason in decision.reason
    if plan is Plan.FAIL:
        assert decision.error is not None
        assert decision.error.retryable is False


def test_voteskip_disabled_and_vote_out_of_range() -> None:
    assert decide_send(VoteSkip(), facts(options={"allow_voteskip": False}), in_doubt=False).plan is Plan.FAIL
    poll = facts(poll=poll_state("t", "alice", ("a", "b")))
    assert decide_send(Vote(2), poll, in_doubt=False).reason.startswith("the poll has 2 options")
    assert decide_send(Vote(1), poll, in_doubt=False).plan is Plan.SEND


# replies ---------------------------------------------------------------------------------------------


def test_queue_is_confirmed_by_its_own_item_only() -> None:
    action = QueueMedia("rt", "rtmp://x/a")
    other = {"item": {"media": {"id": "rtmp://x/b", "type": "rt"}, "uid": 5, "queueby": BOT}, "after": 4}
    mine = {"item": {"media": {"id": "rtmp://x/a", "type": "rt"}, "uid": 6, "queueby": BOT}, "after": 5}
    assert match_reply(action, "queue", other, BOT) is None
    assert match_reply(action, "queue", mine, BOT) == Confirmed("queued", 6)
    assert match_reply(action, "queue", "garbage", BOT) is None
    refused = match_reply(
        action, "queueFail", {"msg": "You are adding videos too quickly", "id": "rtmp://x/a"}, BOT
    )
    assert refused == Refused("You are adding videos too quickly", "rate_limited", True, 1.0)
    assert match_reply(action, "queueFail", {"msg": "x", "id": "rtmp://other"}, BOT) is None
    cu = QueueMedia("cu", "<iframe src='https://e/x'></iframe>")
    assert match_reply(
        cu, "queue", {"item": {"media": {"id": cu.playlist_id, "type": "cu"}, "uid": 1}}, BOT
    ) == Confirmed("queued", 1)


@pytest.mark.parametrize(
    ("action", "event", "data", "expected"),
    [
        (DeleteMedia(3), "delete", {"uid": 3}, "deleted"),
        (DeleteMedia(3), "delete", {"uid": 4}, None),
        (MoveMedia(3, "prepend"), "moveVideo", {"from": 3, "after": "prepend"}, "moved"),
        (JumpTo(3), "setCurrent", 3, "jumped"),
        (JumpTo(3), "setCurrent", 4, None),
        (Skip(3), "setCurrent", 3, "skipped"),
        (Skip(3), "delete", {"uid": 3}, "skipped"),
        (SetTemp(3, True), "setTemp", {"uid": 3, "temp": True}, "temp set"),
        (SetTemp(3, True), "setTemp", {"uid": 3, "temp": False}, None),
        (VoteSkip(), "voteskip", {"count": 1, "need": 1}, "voted"),
        (NewPoll("t", ("a",)), "newPoll", {"title": "t", "initiator": BOT.lower()}, "poll opened"),
        (NewPoll("t", ("a",)), "newPoll", {"title": "t", "initiator": "alice"}, None),
        (Vote(0), "updatePoll", {"counts": [1]}, "voted"),
        (ClosePoll(), "closePoll", None, "poll closed"),
        (Kick("bob"), "userLeave", {"name": "Bob"}, "left"),
        (Ban("bob"), "userLeave", {"name": "bob"}, "left"),
        (Ban("bob"), "chatMsg", {"username": "[server]", "msg": "owner1 namebanned bob"}, "banned"),
        (Ban("bob"), "chatMsg", {"username": "eve", "msg": "owner1 namebanned bob"}, None),
        (Mute("bob"), "setUserMeta", {"name": "bob", "meta": {"afk": False, "muted": True}}, "muted"),
        (Mute("bob"), "setUserMeta", {"name": "bob", "meta": {"afk": False, "muted": False}}, None),
        (Unmute("bob"), "setUserMeta", {"name": "bob", "meta": {"muted": False}}, "unmuted"),
        (SetAfk(True), "setUserMeta", {"name": BOT, "meta": {"afk": True}}, "afk set"),
        (SetAfk(True), "setAFK", {"name": BOT, "afk": True}, "afk set"),
        (AssignLeader("bob"), "setLeader", "bob", "leader set"),
        (Unban(7, "bob"), "banlistRemove", {"id": 7, "name": "bob"}, "unbanned"),
    ],
)
def test_confirmations(action: Action, event: str, data: Any, expected: str | None) -> None:
    reply = match_reply(action, event, data, BOT)
    assert (reply.detail if isinstance(reply, Confirmed) else reply) == expected


def test_someone_elses_queue_of_the_same_media_does_not_confirm_ours() -> None:
    # With allow_dupes on, a user queueing the same video while ours is in flight must not settle
    # our action (with their uid): ours lands as its own item a moment later.
    queue = QueueMedia("yt", "abc")
    theirs = {"item": {"media": {"id": "abc", "type": "yt"}, "uid": 5, "queueby": "alice"}, "after": 4}
    ours = {"item": {"media": {"id": "abc", "type": "yt"}, "uid": 6, "queueby": BOT.upper()}, "after": 5}
    assert match_reply(queue, "queue", theirs, BOT) is None
    assert match_reply(queue, "queue", ours, BOT) == Confirmed("queued", 6)


def test_error_messages_are_attributed_by_scope() -> None:
    kick = match_reply(Kick("boss"), "errorMsg", {"msg": "You do not have permission to kick boss"}, BOT)
    assert isinstance(kick, Refused)
    assert (kick.category, kick.retryable) == ("permission", False)
    assert (
        match_reply(Kick("boss"), "errorMsg", {"msg": "Poll options must be 1-255 characters long."}, BOT)
        is None
    )
    assert match_reply(Ban("bob"), "errorMsg", {"msg": "bob is already banned"}, BOT) == Confirmed(
        "already so (bob is already banned)"
    )
    assert match_reply(Unmute("bob"), "errorMsg", {"msg": "bob is not muted."}, BOT) == Confirmed(
        "already so (bob is not muted.)"
    )
    leader = match_reply(
        AssignLeader("zed"), "errorMsg", {"msg": "Unable to assign leader: could not find user zed"}, BOT
    )
    assert isinstance(leader, Refused)
    assert leader.category == "not_found"
    typed = match_reply(
        SetTemp(1, True), "errorMsg", {"msg": "Unexpected error for message setTemp: Expected key"}, BOT
    )
    assert isinstance(typed, Refused)
    assert typed.category == "invalid"
    assert match_reply(DeleteMedia(1), "errorMsg", {"msg": "anything"}, BOT) is None


@pytest.mark.parametrize(
    ("text", "category", "retryable"),
    [
        ("You are adding videos too quickly", "rate_limited", True),
        ("This item is already on the playlist", "duplicate", False),
        ("Unknown media type &#39;zz&#39;", "unknown_type", False),
        ("You don't have permission to add live media", "permission", False),
        ("Playlist limit reached (4000)", "limit", False),
        ("Channel limit exceeded: maximum number of videos per user", "limit", False),
        ("Video exceeds the maximum length set by the channel admin: 10 seconds", "limit", False),
        ("The YouTube API now requires an API key.  Please see the documentation", "unavailable", False),
        ("Expected HTTP 200 OK, not 503 Service Unavailable", "fetch_failed", True),
        ("Expected HTTP 200 OK, not 404 Not Found", "refused", False),
        ("Something new", "refused", False),
    ],
)
def test_refusal_table(text: str, category: str, retryable: bool) -> None:
    refused = classify_refusal(text)
    assert (refused.category, refused.retryable) == (category, retryable)
    assert "&#39;" not in refused.message


def test_rate_limit_pace_follows_the_bots_rank() -> None:
    assert classify_refusal("You are adding videos too quickly", bot_rank=1).retry_after == 1.0
    assert classify_refusal("You are adding videos too quickly", bot_rank=2).retry_after == 0.5


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "item",
                    "media",
                    "id",
                    "type",
                    "uid",
                    "from",
                    "temp",
                    "msg",
                    "name",
                    "meta",
                    "muted",
                    "afk",
                    "initiator",
                    "username",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
_EVENTS = st.sampled_from(
    [
        "queue",
        "queueFail",
        "delete",
        "moveVideo",
        "setCurrent",
        "setTemp",
        "voteskip",
        "newPoll",
        "updatePoll",
        "closePoll",
        "userLeave",
        "chatMsg",
        "setUserMeta",
        "setAFK",
        "setLeader",
        "banlistRemove",
        "errorMsg",
        "channelRankFail",
        "cooldown",
        "other",
    ]
)
_ACTIONS = [
    QueueMedia("rt", "rtmp://x/a"),
    DeleteMedia(1),
    MoveMedia(1, "append"),
    JumpTo(1),
    Skip(1),
    SetTemp(1, True),
    VoteSkip(),
    NewPoll("t", ("a",)),
    Vote(0),
    ClosePoll(),
    Kick("bob"),
    Ban("bob"),
    Unban(1, "bob"),
    Mute("bob"),
    Unmute("bob"),
    SetAfk(True),
    AssignLeader("bob"),
]


@given(event=_EVENTS, data=_JSON)
@settings(max_examples=300, deadline=None)
def test_reply_matching_never_raises_on_any_payload(event: str, data: Any) -> None:
    for action in _ACTIONS:
        reply = match_reply(action, event, data, BOT)
        assert reply is None or isinstance(reply, Confirmed | Refused)
