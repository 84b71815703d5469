"""Pure: which server event confirms or refuses the action in flight, and what a refusal means.

One action is in flight per room at a time (in order with the room's chat lines), so a reply is
matched against that one action only. ``match_reply(action, event, data, bot_name)`` returns
``Confirmed``, ``Refused`` or None (not about this action). ``classify_refusal`` is the table from
the server's refusal texts (measured, ../shared/cytube-protocol-actions.md) to a category, whether
retrying can help, and at what pace.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from daz.cytube.actions import (
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

# CyTube's queue limiter: burst 3 then 1 per second (rank >= 2: burst 10 then 2 per second).
QUEUE_PACE_SECONDS = 1.0
QUEUE_PACE_SECONDS_MOD = 0.5
FETCH_RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Confirmed:
    detail: str
    uid: int | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    message: str  # the server's text, HTML unescaped
    category: str
    retryable: bool
    retry_after: float = 0.0


Reply = Confirmed | Refused


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    category: str
    retryable: bool
    retry_after: float = 0.0
    settles: bool = False  # the refusal says the effect holds already ("X is already banned")


def _rule(text: str, category: str, *, retryable: bool = False, retry_after: float = 0.0,
          settles: bool = False) -> _Rule:
    return _Rule(re.compile(text, re.IGNORECASE), category, retryable, retry_after, settles)


# First match wins. Only the pace refusal and a server-side fetch failure are worth retrying: the rest
# would be refused again exactly the same way.
REFUSALS: tuple[_Rule, ...] = (
    _rule(r"adding videos too quickly", "rate_limited", retryable=True, retry_after=QUEUE_PACE_SECONDS),
    _rule(r"already on the playlist", "duplicate"),
    _rule(r"is already banned", "already", settles=True),
    _rule(r"is not muted", "already", settles=True),
    _rule(r"don't have permission|do not have permission|do not have ban permissions|not allowed to",
          "permission"),
    _rule(r"unknown media type", "unknown_type"),
    _rule(r"playlist limit reached|channel limit exceeded|exceeds the maximum length", "limit"),
    _rule(r"requires an API key|playback is not enabled", "unavailable"),
    _rule(r"Expected HTTP 200 OK, not 5\d\d", "fetch_failed", retryable=True,
          retry_after=FETCH_RETRY_SECONDS),
    _rule(r"could not find user|not present in channel|no kick target|requires a target", "not_found"),
    _rule(r"equal or higher rank", "permission"),
    _rule(r"cannot ban yourself|can't ban yourself|unmute yourself", "invalid"),
    _rule(r"HLS links must start with HTTPS|invalid embed|Unexpected error for message|Poll options|"
          r"Poll timeout|Missing key", "invalid"),
)


def classify_refusal(message: str, *, bot_rank: float = 0.0) -> Refused:
    """The server's refusal text → category, retryable, pace. Unknown texts are not retried. Pure."""
    text = html.unescape(message)
    for rule in REFUSALS:
        if rule.pattern.search(text):
            pace = rule.retry_after
            if rule.category == "rate_limited" and bot_rank >= 2:
                pace = QUEUE_PACE_SECONDS_MOD
            return Refused(text, "already" if rule.settles else rule.category, rule.retryable, pace)
    return Refused(text, "refused", retryable=False)


def _lower(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


def _obj(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {}


def match_reply(action: Action, event: str, data: Any, bot_name: str,
                *, bot_rank: float = 0.0) -> Reply | None:
    """Whether server event ``event`` (payload ``data``) settles ``action``. Pure, never raises."""
    if event in ("errorMsg", "channelRankFail"):
        return _error_reply(action, str(_obj(data).get("msg", "")), bot_rank)
    if isinstance(action, QueueMedia):
        if event == "queue":
            item = _obj(_obj(data).get("item"))
            media = _obj(item.get("media"))
            queueby = item.get("queueby")
            # Another user queueing the same media (allow_dupes on) is not our confirmation.
            ours = queueby is None or _lower(queueby) == bot_name.lower()
            if ours and media.get("id") == action.playlist_id and media.get("type") == action.media_type:
                uid = item.get("uid")
                return Confirmed("queued", uid if isinstance(uid, int) else None)
        if event == "queueFail":
            obj = _obj(data)
            if obj.get("id") in (None, action.media_id, action.playlist_id):
                return classify_refusal(str(obj.get("msg", "")), bot_rank=bot_rank)
        return None
    if isinstance(action, DeleteMedia):
        return Confirmed("deleted") if event == "delete" and _obj(data).get("uid") == action.uid else None
    if isinstance(action, MoveMedia):
        return Confirmed("moved") if event == "moveVideo" and _obj(data).get("from") == action.uid else None
    if isinstance(action, JumpTo):
        return Confirmed("jumped") if event == "setCurrent" and data == action.uid else None
    if isinstance(action, Skip):
        # The next item starts (setCurrent; the same uid again when a single item loops), or the
        # last temporary item is simply deleted and nothing plays.
        if event == "setCurrent" or (event == "delete" and _obj(data).get("uid") == action.uid):
            return Confirmed("skipped")
        return None
    if isinstance(action, SetTemp):
        obj = _obj(data)
        ok = event == "setTemp" and obj.get("uid") == action.uid and obj.get("temp") == action.temp
        return Confirmed("temp set") if ok else None
    if isinstance(action, VoteSkip):
        return Confirmed("voted") if event == "voteskip" else None
    if isinstance(action, NewPoll):
        ok = event == "newPoll" and _lower(_obj(data).get("initiator")) == bot_name.lower()
        return Confirmed("poll opened") if ok else None
    if isinstance(action, Vote):
        return Confirmed("voted") if event == "updatePoll" else None
    if isinstance(action, ClosePoll):
        return Confirmed("poll closed") if event == "closePoll" else None
    if isinstance(action, Kick | Ban):
        if event == "userLeave" and _lower(_obj(data).get("name")) == action.name.lower():
            return Confirmed("left")
        if isinstance(action, Ban) and event == "chatMsg":
            return _ban_whisper(action, _obj(data))
        return None
    if isinstance(action, Mute | Unmute):
        obj = _obj(data)
        meta = _obj(obj.get("meta"))
        muted = bool(meta.get("muted")) or bool(meta.get("smuted"))
        ok = (event == "setUserMeta" and _lower(obj.get("name")) == action.name.lower()
              and muted == isinstance(action, Mute))
        return Confirmed("muted" if muted else "unmuted") if ok else None
    if isinstance(action, SetAfk):
        obj = _obj(data)
        afk = _obj(obj.get("meta")).get("afk") if event == "setUserMeta" else obj.get("afk")
        ok = (event in ("setUserMeta", "setAFK") and _lower(obj.get("name")) == bot_name.lower()
              and afk == action.afk)
        return Confirmed("afk set") if ok else None
    if isinstance(action, AssignLeader):
        ok = event == "setLeader" and isinstance(data, str) and data.lower() == action.name.lower()
        return Confirmed("leader set") if ok else None
    if isinstance(action, Unban):
        ok = event == "banlistRemove" and _obj(data).get("id") == action.ban_id
        return Confirmed("unbanned") if ok else None
    return None


def _ban_whisper(action: Ban, msg: dict[str, Any]) -> Confirmed | None:
    # Moderators get "[server] owner1 namebanned guest2" when a name ban is stored.
    if msg.get("username") != "[server]":
        return None
    text = html.unescape(str(msg.get("msg", ""))).lower()
    return Confirmed("banned") if f"namebanned {action.name.lower()}" in text else None


# errorMsg texts that belong to an action of this kind (anything else is about something else).
_ERROR_SCOPES: dict[type[Action], re.Pattern[str]] = {
    NewPoll: re.compile(r"poll|newPoll", re.IGNORECASE),
    Vote: re.compile(r"message vote", re.IGNORECASE),
    Kick: re.compile(r"kick", re.IGNORECASE),
    Ban: re.compile(r"ban", re.IGNORECASE),
    Mute: re.compile(r"mute", re.IGNORECASE),
    Unmute: re.compile(r"mute", re.IGNORECASE),
    AssignLeader: re.compile(r"leader", re.IGNORECASE),
    QueueMedia: re.compile(r"message queue", re.IGNORECASE),
    SetTemp: re.compile(r"message setTemp", re.IGNORECASE),
    MoveMedia: re.compile(r"message moveMedia", re.IGNORECASE),
    Unban: re.compile(r"message unban", re.IGNORECASE),
}


def _error_reply(action: Action, message: str, bot_rank: float) -> Refused | Confirmed | None:
    scope = _ERROR_SCOPES.get(type(action))
    text = html.unescape(message)
    if scope is None or not scope.search(text):
        return None
    refusal = classify_refusal(text, bot_rank=bot_rank)
    if refusal.category == "already":
        return Confirmed(f"already so ({refusal.message})")
    return refusal
