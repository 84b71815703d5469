"""Pure decisions about an action against what the channel replica knows: permissions, preconditions,
and whether its effect already holds (the in-doubt reconciliation and the check after silence).

``ChannelFacts`` is the small read-only view these decisions need; ``daz.cytube.action_facts``
builds it from the channel replica (one adapter), and tests build it directly.

Permission rule (CyTube permissions.js ``hasPermission``): a user may do ``key`` when its effective
rank is ``>= permissions[key]``; for keys starting with ``playlist`` an OPEN (unlocked) playlist
also allows ``>= permissions["o" + key]``. A key the channel does not have (unregistered channels
lack kick, mute, ban, playlistaddrawfile, ...) compares false: nobody may, not even rank 255.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from daz.cytube.actions import (
    LIVE_TYPES,
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
    Unmute,
    Vote,
    VoteSkip,
)
from daz.cytube.protocol import echo_key, sent_key
from daz.errors import ActionError, ActionInvalid, ActionNotPermitted, ActionRefused


@dataclass(frozen=True, slots=True)
class Entry:
    uid: int
    media_type: str
    media_id: str
    temp: bool = True
    queueby: str = ""


@dataclass(frozen=True, slots=True)
class PollFacts:
    title: str  # as the server sent it (HTML-escaped, links as <a>)
    initiator: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UserFacts:
    name: str
    rank: float
    afk: bool = False
    muted: bool = False


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    bot_name: str
    bot_rank: float
    permissions: Mapping[str, float]
    playlist_locked: bool = True
    playlist: tuple[Entry, ...] = ()
    current_uid: int | None = None
    poll: PollFacts | None = None
    users: Mapping[str, UserFacts] = field(default_factory=dict)  # keyed by lower-case name
    leader: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def entry(self, uid: int) -> Entry | None:
        return next((e for e in self.playlist if e.uid == uid), None)

    def find_media(self, media_type: str, media_id: str) -> Entry | None:
        return next((e for e in self.playlist if e.media_id == media_id and e.media_type == media_type), None)

    def user(self, name: str) -> UserFacts | None:
        return self.users.get(name.lower())

    def after_of(self, uid: int) -> int | str | None:
        """The uid before ``uid`` ("prepend" when it is first); None when ``uid`` is not listed."""
        for index, entry in enumerate(self.playlist):
            if entry.uid == uid:
                return "prepend" if index == 0 else self.playlist[index - 1].uid
        return None


# permissions -----------------------------------------------------------------------------------

def required_keys(action: Action) -> tuple[str, ...]:
    """Every permission key the server checks for ``action`` (all must pass). Pure."""
    if isinstance(action, QueueMedia):
        keys = ["playlistadd"]
        if action.position == "next":
            keys.append("playlistnext")
        if action.media_type == "yp":
            keys.append("playlistaddlist")
        if action.media_type in LIVE_TYPES:
            keys.append("playlistaddlive")
        if action.media_type == "cu":
            keys.append("playlistaddcustom")
        if action.media_type in {"fi", "cm"}:
            keys.append("playlistaddrawfile")
        return tuple(keys)
    simple: dict[type[Action], str] = {
        DeleteMedia: "playlistdelete", MoveMedia: "playlistmove", JumpTo: "playlistjump",
        Skip: "playlistjump", SetTemp: "settemp", VoteSkip: "voteskip", NewPoll: "pollctl",
        ClosePoll: "pollctl", Vote: "pollvote", Kick: "kick", Ban: "ban", Unban: "ban", Mute: "mute",
        Unmute: "mute", AssignLeader: "leaderctl",
    }
    key = simple.get(type(action))
    return (key,) if key is not None else ()


def has_permission(key: str, rank: float, permissions: Mapping[str, float], *, locked: bool) -> bool:
    """CyTube's ``hasPermission``: an absent key is false for everyone. Pure."""
    if key.startswith("playlist") and not locked:
        open_rank = permissions.get("o" + key)
        if open_rank is not None and rank >= open_rank:
            return True
    needed = permissions.get(key)
    return needed is not None and rank >= needed


def needed_rank(key: str, permissions: Mapping[str, float], *, locked: bool) -> float | None:
    """The lowest rank that has ``key`` now; None when nobody can (the key is absent)."""
    keys = (key, "o" + key) if key.startswith("playlist") and not locked else (key,)
    ranks = [permissions[k] for k in keys if k in permissions]
    return min(ranks) if ranks else None


def check_permission(action: Action, facts: ChannelFacts) -> ActionNotPermitted | None:
    """The first permission the bot lacks for ``action``, as the error to raise; None if it may. Pure."""
    for key in required_keys(action):
        if has_permission(key, facts.bot_rank, facts.permissions, locked=facts.playlist_locked):
            continue
        needed = needed_rank(key, facts.permissions, locked=facts.playlist_locked)
        if needed is None:
            why = (f"permission {key!r} does not exist in this channel (unregistered channels lack it), "
                   "so nobody may use it")
        else:
            why = f"permission {key!r} needs rank {needed:g}; the bot has rank {facts.bot_rank:g}"
        return ActionNotPermitted(f"{action.describe()}: {why}", key=key, needed=needed, rank=facts.bot_rank,
                                  kind=action.kind, operation_type="cytube_action")
    return None


# the effect ----------------------------------------------------------------------------------------

def effect_holds(action: Action, facts: ChannelFacts) -> bool:
    """Whether the replica already shows what ``action`` was for. Used for an action in doubt (sent,
    unconfirmed, then the connection dropped) and after silence: True means "done, do not resend". Pure."""
    if isinstance(action, QueueMedia):
        return facts.find_media(action.media_type, action.playlist_id) is not None
    if isinstance(action, DeleteMedia):
        return facts.entry(action.uid) is None
    if isinstance(action, MoveMedia):
        if action.after == "append":
            return bool(facts.playlist) and facts.playlist[-1].uid == action.uid
        return facts.after_of(action.uid) == action.after
    if isinstance(action, JumpTo):
        return facts.current_uid == action.uid
    if isinstance(action, Skip):
        return facts.current_uid != action.uid
    if isinstance(action, SetTemp):
        entry = facts.entry(action.uid)
        return entry is not None and entry.temp == action.temp
    if isinstance(action, NewPoll):
        return facts.poll is not None and _same_poll(facts.poll, action, facts.bot_name)
    if isinstance(action, ClosePoll):
        return facts.poll is None
    if isinstance(action, Kick | Ban):
        return facts.user(action.name) is None
    if isinstance(action, Mute | Unmute):
        user = facts.user(action.name)
        return user is not None and user.muted == isinstance(action, Mute)
    if isinstance(action, SetAfk):
        me = facts.user(facts.bot_name)
        return me is not None and me.afk == action.afk
    if isinstance(action, AssignLeader):
        return (facts.leader or "").lower() == action.name.lower()
    return False  # voteskip, vote, unban: the replica cannot tell


def _same_poll(poll: PollFacts, action: NewPoll, bot_name: str) -> bool:
    return poll.initiator.lower() == bot_name.lower() and echo_key(poll.title) == sent_key(action.title)


# the decision before sending ------------------------------------------------------------------

class Plan(StrEnum):
    SEND = "send"
    DONE = "done"  # the effect holds already: confirmed without sending
    FAIL = "fail"  # never sent: the error says why


@dataclass(frozen=True, slots=True)
class SendDecision:
    plan: Plan
    reason: str = ""
    error: ActionError | None = None


def decide_send(action: Action, facts: ChannelFacts, *, in_doubt: bool) -> SendDecision:
    """What to do with the head action now that the room is READY and the replica is complete. Pure.

    An action in doubt (it may have reached the server before the connection dropped) is first
    reconciled: if its effect is on the replica it is confirmed, not sent twice. Then the bot's
    permissions (never send what the server would drop or kick us for), then the preconditions.
    """
    if in_doubt and effect_holds(action, facts):
        return SendDecision(Plan.DONE, "in doubt; the resynced replica shows it done")
    denied = check_permission(action, facts)
    if denied is not None:
        return SendDecision(Plan.FAIL, str(denied), denied)
    return _preconditions(action, facts)


def _fail(action: Action, problem: str) -> SendDecision:
    error = ActionInvalid(f"{action.describe()}: {problem}", retryable=False, kind=action.kind,
                          operation_type="cytube_action")
    return SendDecision(Plan.FAIL, problem, error)


def _preconditions(action: Action, facts: ChannelFacts) -> SendDecision:
    send = SendDecision(Plan.SEND)
    if isinstance(action, QueueMedia):
        if (action.position == "end" and not facts.options.get("allow_dupes", False)
                and facts.find_media(action.media_type, action.playlist_id) is not None):
            error = ActionRefused(f"{action.describe()}: This item is already on the playlist",
                                  server_message="This item is already on the playlist",
                                  category="duplicate", retryable=False, kind=action.kind)
            return SendDecision(Plan.FAIL, "duplicate", error)
        return send
    if isinstance(action, DeleteMedia | MoveMedia | JumpTo | SetTemp):
        if facts.entry(action.uid) is None:
            return _fail(action, f"uid {action.uid} is not on the playlist")
        after: int | str | None = None
        if isinstance(action, MoveMedia):
            after = action.after
        if isinstance(after, int) and facts.entry(after) is None:
            return _fail(action, f"uid {after} (after) is not on the playlist")
        if isinstance(action, SetTemp) and effect_holds(action, facts):
            return SendDecision(Plan.DONE, "already so")
        return send
    if isinstance(action, Skip):
        if facts.current_uid != action.uid:
            return SendDecision(Plan.DONE, f"uid {action.uid} is not playing any more")
        return send
    if isinstance(action, VoteSkip):
        if facts.options.get("allow_voteskip") is False:
            return _fail(action, "voteskip is disabled in this channel (option allow_voteskip)")
        return send
    if isinstance(action, Vote):
        if facts.poll is None:
            return _fail(action, "no poll is open")
        if facts.poll.options and action.option >= len(facts.poll.options):
            return _fail(action, f"the poll has {len(facts.poll.options)} options; option {action.option} "
                                 "does not exist (options count from 0)")
        return send
    if isinstance(action, ClosePoll):
        return SendDecision(Plan.DONE, "no poll is open") if facts.poll is None else send
    if isinstance(action, Kick | Ban | Mute | Unmute):
        return _moderation(action, facts)
    if isinstance(action, SetAfk):
        return SendDecision(Plan.DONE, "already so") if effect_holds(action, facts) else send
    if isinstance(action, AssignLeader):
        if effect_holds(action, facts):
            return SendDecision(Plan.DONE, "already so")
        if action.name and facts.user(action.name) is None:
            return _fail(action, f"{action.name} is not in the room")
        return send
    if isinstance(action, Unban):
        return send
    return send


def _moderation(action: Kick | Ban | Mute | Unmute, facts: ChannelFacts) -> SendDecision:
    if action.name.lower() == facts.bot_name.lower():
        return _fail(action, "the bot cannot do this to itself")
    target = facts.user(action.name)
    if target is None:
        if isinstance(action, Ban):
            return SendDecision(Plan.SEND)  # an absent name can still be banned
        return _fail(action, f"{action.name} is not in the room")
    if target.rank >= facts.bot_rank:
        key = required_keys(action)[0]
        error = ActionNotPermitted(
            f"{action.describe()}: {action.name} has rank {target.rank:g}, not below the bot's rank "
            f"{facts.bot_rank:g} (the server refuses moderating an equal or higher rank)",
            key=key, needed=target.rank, rank=facts.bot_rank, kind=action.kind,
            operation_type="cytube_action")
        return SendDecision(Plan.FAIL, str(error), error)
    if isinstance(action, Mute | Unmute) and effect_holds(action, facts):
        return SendDecision(Plan.DONE, "already so")
    return SendDecision(Plan.SEND)
