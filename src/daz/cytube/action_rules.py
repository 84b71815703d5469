"""Pure decisions about an action against the channel replica (``ChannelState``): permissions,
preconditions, and whether its effect already holds (the in-doubt reconciliation, and the check
after silence).

Permissions use the replica's own rule (``ChannelState.may``, CyTube's ``hasPermission``): rank
``>= permissions[key]``, or for ``playlist*`` keys on an unlocked playlist ``>= permissions["o"+key]``;
a key the channel does not have (unregistered channels lack kick, mute, ban, playlistaddrawfile,
...) is allowed to nobody, not even rank 255.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

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
    UnbanName,
    Unmute,
    Vote,
    VoteSkip,
)
from daz.cytube.channel import ChannelState, Poll
from daz.cytube.protocol import echo_key, sent_key
from daz.errors import ActionError, ActionInvalid, ActionNotPermitted, ActionRefused

# permissions -----------------------------------------------------------------------------------

def required_keys(action: Action) -> tuple[str, ...]:
    """Every permission key the server checks for ``action`` (all must pass). Pure."""
    if isinstance(action, QueueMedia):
        keys = ["playlistadd"]
        if action.position == "next":
            keys.append("playlistnext")
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
        ClosePoll: "pollctl", Vote: "pollvote", Kick: "kick", Ban: "ban", Unban: "ban", UnbanName: "ban",
        Mute: "mute", Unmute: "mute", AssignLeader: "leaderctl",
    }
    key = simple.get(type(action))
    return (key,) if key is not None else ()


def check_permission(action: Action, state: ChannelState) -> ActionNotPermitted | None:
    """The first permission the bot lacks for ``action``, as the error to raise; None if it may. Pure."""
    for key in required_keys(action):
        denied = check_key(key, state, what=action.describe(), kind=action.kind)
        if denied is not None:
            return denied
    return None


def check_key(key: str, state: ChannelState, *, what: str, kind: str) -> ActionNotPermitted | None:
    """``ActionNotPermitted`` for ``what`` when the bot may not do ``key`` on ``state``, else None. Pure."""
    if state.may(key):
        return None
    needed = state.rank_needed(key)
    if needed is None:
        why = (f"permission {key!r} does not exist in this channel (unregistered channels lack it), "
               "so nobody may use it")
    else:
        why = f"permission {key!r} needs rank {needed:g}; the bot has rank {state.self_rank:g}"
    return ActionNotPermitted(f"{what}: {why}", key=key, needed=needed, rank=state.self_rank,
                              kind=kind, operation_type="cytube_action")


# the effect ----------------------------------------------------------------------------------------

def effect_holds(action: Action, state: ChannelState) -> bool:
    """Whether the replica already shows what ``action`` was for. Used for an action in doubt (sent,
    unconfirmed, then the connection dropped) and after silence: True means "done, do not resend". Pure."""
    if isinstance(action, QueueMedia):
        return state.find_media(action.media_type, action.playlist_id) is not None
    if isinstance(action, DeleteMedia):
        return state.item(action.uid) is None
    if isinstance(action, MoveMedia):
        if action.after == "append":
            return bool(state.items) and state.items[-1].uid == action.uid
        return _after_of(state, action.uid) == action.after
    if isinstance(action, JumpTo):
        return state.current_uid == action.uid
    if isinstance(action, Skip):
        return state.current_uid != action.uid
    if isinstance(action, SetTemp):
        entry = state.item(action.uid)
        return entry is not None and entry.temp == action.temp
    if isinstance(action, NewPoll):
        return state.poll is not None and _same_poll(state.poll, action, _me(state))
    if isinstance(action, ClosePoll):
        return state.poll is None
    if isinstance(action, Kick | Ban):
        return state.user(action.name) is None
    if isinstance(action, Mute | Unmute):
        user = state.user(action.name)
        return user is not None and user.muted == isinstance(action, Mute)
    if isinstance(action, SetAfk):
        me = state.user(_me(state))
        return me is not None and me.afk == action.afk
    if isinstance(action, AssignLeader):
        return (state.leader or "").lower() == action.name.lower()
    return False  # voteskip, vote, unban, unban_name: the replica cannot tell (bans are not in it)


def _me(state: ChannelState) -> str:
    return state.self_name or ""


def _after_of(state: ChannelState, uid: int) -> int | str | None:
    """The uid before ``uid`` ("prepend" when it is first); None when ``uid`` is not listed."""
    index = state.index(uid)
    if index is None:
        return None
    return "prepend" if index == 0 else state.items[index - 1].uid


def _same_poll(poll: Poll, action: NewPoll, bot_name: str) -> bool:
    # Title AND options: a bot asking the same question round after round (trivia) must not have
    # a new round taken for done because its previous round's poll is still open. The server
    # escapes both and links URLs, hence echo_key against sent_key.
    return (
        poll.initiator.lower() == bot_name.lower()
        and echo_key(poll.title) == sent_key(action.title)
        and len(poll.options) == len(action.options)
        and all(echo_key(seen) == sent_key(sent)
                for seen, sent in zip(poll.options, action.options, strict=True))
    )


# uids across a reload ------------------------------------------------------------------------------
# CyTube renumbers every uid from 0 when it loads a channel's saved playlist (playlist.js load: a
# server restart, or a registered channel unloaded after its last user left and joined again),
# measured on CyTube 3.86. A uid an action carries across a reconnect may then name ANOTHER item:
# an in-doubt delete would remove the wrong one. So an action records the media its uids pointed at
# when it was submitted, and is pointed at that media's uid again before it is sent.

UidTarget = DeleteMedia | MoveMedia | JumpTo | Skip | SetTemp


def media_key(state: ChannelState, uid: int) -> str:
    """``"<type>:<id>"`` of the item ``uid`` on the replica, "" if it is not there."""
    entry = state.item(uid)
    return "" if entry is None else f"{entry.media.type}:{entry.media.id}"


def bind_items(action: Action, state: ChannelState) -> Action:
    """``action`` with the media its uids point at on ``state`` recorded (see ``retarget``). Pure."""
    if isinstance(action, UidTarget) and not action.item:
        action = replace(action, item=media_key(state, action.uid))
    if isinstance(action, MoveMedia) and isinstance(action.after, int) and not action.after_item:
        action = replace(action, after_item=media_key(state, action.after))
    return action


def _resolve(state: ChannelState, uid: int, key: str) -> int | None:
    """The uid of the media ``key`` names: ``uid`` while it still holds it (or no key was recorded),
    else that media's uid on the playlist now; None when the media is not on the playlist."""
    if not key or media_key(state, uid) == key:
        return uid
    media_type, _, media_id = key.partition(":")
    found = state.find_media(media_type, media_id)
    return None if found is None else found.uid


def retarget(action: Action, state: ChannelState) -> Action | SendDecision:
    """``action`` pointed at the uids its media have on ``state`` now, or the decision when the
    media it was meant for left the playlist (a delete or skip of it is done; the rest fail). Pure."""
    if not isinstance(action, UidTarget):
        return action
    uid = _resolve(state, action.uid, action.item)
    if uid is None:
        gone = f"{action.item} (uid {action.uid} when asked) is no longer on the playlist"
        if isinstance(action, DeleteMedia | Skip):
            return SendDecision(Plan.DONE, gone)
        return _fail(action, gone)
    if isinstance(action, MoveMedia) and isinstance(action.after, int):
        after = _resolve(state, action.after, action.after_item)
        if after is None:
            return _fail(action, f"{action.after_item} (after; uid {action.after} when asked) is no longer "
                                 "on the playlist")
        return action if (uid, after) == (action.uid, action.after) else replace(action, uid=uid, after=after)
    return action if uid == action.uid else replace(action, uid=uid)


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
    action: Action | None = None  # SEND: the action to send (its uids re-pointed by ``retarget``)


def decide_send(action: Action, state: ChannelState, *, in_doubt: bool) -> SendDecision:
    """What to do with the head action now that the room is READY and the replica is complete. Pure.

    An action in doubt (it may have reached the server before the connection dropped) is first
    reconciled: if its effect is on the replica it is confirmed, not sent twice. Then the bot's
    permissions (never send what the server would drop or kick us for), then the preconditions.
    """
    target = retarget(action, state)
    if isinstance(target, SendDecision):
        return target
    if in_doubt and effect_holds(target, state):
        return SendDecision(Plan.DONE, "in doubt; the resynced replica shows it done")
    denied = check_permission(target, state)
    if denied is not None:
        return SendDecision(Plan.FAIL, str(denied), denied)
    decision = _preconditions(target, state)
    return replace(decision, action=target) if decision.plan is Plan.SEND else decision


def _fail(action: Action, problem: str) -> SendDecision:
    error = ActionInvalid(f"{action.describe()}: {problem}", retryable=False, kind=action.kind,
                          operation_type="cytube_action")
    return SendDecision(Plan.FAIL, problem, error)


def _preconditions(action: Action, state: ChannelState) -> SendDecision:
    send = SendDecision(Plan.SEND)
    if isinstance(action, QueueMedia):
        if (action.position == "end" and not state.options.get("allow_dupes", False)
                and state.find_media(action.media_type, action.playlist_id) is not None):
            error = ActionRefused(f"{action.describe()}: This item is already on the playlist",
                                  server_message="This item is already on the playlist",
                                  category="duplicate", retryable=False, kind=action.kind)
            return SendDecision(Plan.FAIL, "duplicate", error)
        return send
    if isinstance(action, DeleteMedia | MoveMedia | JumpTo | SetTemp):
        if state.item(action.uid) is None:
            return _fail(action, f"uid {action.uid} is not on the playlist")
        after: int | str | None = None
        if isinstance(action, MoveMedia):
            after = action.after
        if isinstance(after, int) and state.item(after) is None:
            return _fail(action, f"uid {after} (after) is not on the playlist")
        if isinstance(action, SetTemp) and effect_holds(action, state):
            return SendDecision(Plan.DONE, "already so")
        return send
    if isinstance(action, Skip):
        if state.current_uid != action.uid:
            return SendDecision(Plan.DONE, f"uid {action.uid} is not playing any more")
        return send
    if isinstance(action, VoteSkip):
        if state.options.get("allow_voteskip") is False:
            return _fail(action, "voteskip is disabled in this channel (option allow_voteskip)")
        return send
    if isinstance(action, Vote):
        if state.poll is None:
            return _fail(action, "no poll is open")
        if state.poll.options and action.option >= len(state.poll.options):
            return _fail(action, f"the poll has {len(state.poll.options)} options; option {action.option} "
                                 "does not exist (options count from 0)")
        return send
    if isinstance(action, ClosePoll):
        return SendDecision(Plan.DONE, "no poll is open") if state.poll is None else send
    if isinstance(action, Kick | Ban | Mute | Unmute):
        return _moderation(action, state)
    if isinstance(action, SetAfk):
        return SendDecision(Plan.DONE, "already so") if effect_holds(action, state) else send
    if isinstance(action, AssignLeader):
        if effect_holds(action, state):
            return SendDecision(Plan.DONE, "already so")
        if action.name and state.user(action.name) is None:
            return _fail(action, f"{action.name} is not in the room")
        return send
    # Unban, UnbanName: the replica holds no ban list; unban_name asks the server for it next.
    return send


def _moderation(action: Kick | Ban | Mute | Unmute, state: ChannelState) -> SendDecision:
    if action.name.lower() == _me(state).lower():
        return _fail(action, "the bot cannot do this to itself")
    target = state.user(action.name)
    if target is None:
        if isinstance(action, Ban):
            return SendDecision(Plan.SEND)  # an absent name can still be banned
        return _fail(action, f"{action.name} is not in the room")
    if target.rank >= state.self_rank:
        key = required_keys(action)[0]
        error = ActionNotPermitted(
            f"{action.describe()}: {action.name} has rank {target.rank:g}, not below the bot's rank "
            f"{state.self_rank:g} (the server refuses moderating an equal or higher rank)",
            key=key, needed=target.rank, rank=state.self_rank, kind=action.kind,
            operation_type="cytube_action")
        return SendDecision(Plan.FAIL, str(error), error)
    if isinstance(action, Mute | Unmute) and effect_holds(action, state):
        return SendDecision(Plan.DONE, "already so")
    return SendDecision(Plan.SEND)
