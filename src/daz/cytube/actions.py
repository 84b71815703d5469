"""Channel actions, pure: what a plugin may ask the server to do, validated, and how it goes on the wire.

Every action is a frozen dataclass with a ``kind``. ``validate()`` checks it locally (media type
known, poll limits, names, uids) and raises ``ActionInvalid`` (a ``ValueError`` in the ``DazError``
hierarchy) before anything is queued or sent; ``wire()`` is the Socket.IO event and payload; and
``to_record``/``action_from_record`` make it a plain dict for the durable journal.

The server rules come from ../shared/cytube-protocol-actions.md (measured on CyTube 3.86) and the
server's source: the permission keys each action needs are in ``daz.cytube.action_rules``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal

from daz.errors import ActionInvalid

USER_NAME = re.compile(r"^[\w-]{1,20}$")
# Media types the server's queue accepts (get-info.js / utilities.js of CyTube 3.x).
MEDIA_TYPES = frozenset({
    "yt", "vi", "dm", "sc", "li", "tw", "tc", "rt", "hl", "cu", "fi", "cm", "im", "us", "gd",
    "hb", "sb", "mx", "bc", "bn", "od", "nv", "pt", "jt",
})
LIVE_TYPES = frozenset({"li", "tw", "rt", "cu", "hl"})  # utilities.js isLive: duration honoured
TITLED_TYPES = frozenset({"cu", "fi"})  # the only types whose custom title the server keeps
MAX_MEDIA_ID_CHARS = 2_000
MAX_TITLE_CHARS = 100  # the server cuts longer titles to 97 + "..."
POLL_MAX_OPTIONS = 50
POLL_MAX_OPTION_CHARS = 255
POLL_MAX_TITLE_CHARS = 255
POLL_MAX_TIMEOUT_SECONDS = 86_400
MAX_REASON_CHARS = 255

Position = Literal["next", "end"]
MoveTarget = int | Literal["prepend", "append"]


def _invalid(kind: str, problem: str) -> ActionInvalid:
    return ActionInvalid(f"{kind}: {problem}", retryable=False, operation_type="cytube_action")


def _check_name(kind: str, field: str, name: str) -> None:
    if not isinstance(name, str) or not USER_NAME.match(name):
        raise _invalid(kind, f"{field} {name!r} is not a CyTube user name (1-20 letters, digits, - or _)")


def _check_flag(kind: str, field: str, value: object) -> None:
    # The server typechecks these as booleans (errorMsg "Expected key ... boolean") or, for /afk,
    # the replica decides on it: a truthy string must not pass for one.
    if not isinstance(value, bool):
        raise _invalid(kind, f"{field} must be True or False, not {value!r}")


def poll_options(options: object) -> tuple[str, ...]:
    """A plugin's poll options as a tuple, or ``ActionInvalid`` when they are not a list of strings
    (a bare string would otherwise become one option per character)."""
    if isinstance(options, str | bytes) or not isinstance(options, list | tuple):
        raise _invalid("new_poll", f"options must be a list of strings, not {type(options).__name__}")
    return tuple(options)


def _check_uid(kind: str, field: str, uid: object) -> None:
    if isinstance(uid, bool) or not isinstance(uid, int) or uid < 0:
        raise _invalid(kind, f"{field} must be a playlist uid (an integer >= 0), not {uid!r}")


def _check_item(kind: str, field: str, item: object) -> None:
    # "<type>:<id>" of the media a uid pointed at when the action was submitted ("" = not known).
    if not isinstance(item, str) or len(item) > MAX_MEDIA_ID_CHARS + 10:
        raise _invalid(kind, f"{field} must be the media key '<type>:<id>' (or empty), not {item!r}")


def _check_reason(kind: str, reason: str) -> None:
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS or "\n" in reason or "\r" in reason:
        raise _invalid(kind, f"reason must be one line of at most {MAX_REASON_CHARS} characters")


@dataclass(frozen=True, slots=True)
class Action:
    """Base of every action. ``kind`` names it in records, events and metrics (a bounded set)."""

    kind: ClassVar[str] = "action"

    def validate(self) -> None:
        """Raise ``ActionInvalid`` naming the field and the fix; nothing is sent then."""

    def wire(self) -> tuple[str, Any]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind


@dataclass(frozen=True, slots=True)
class QueueMedia(Action):
    kind: ClassVar[str] = "queue"
    media_type: str
    media_id: str
    position: Position = "end"
    temp: bool = True
    title: str | None = None
    duration: float | None = None

    def validate(self) -> None:
        if not isinstance(self.media_type, str):
            raise _invalid("queue", f"media_type must be a string such as 'yt', not {self.media_type!r}")
        if self.media_type == "yp":
            # A YouTube playlist becomes many items with other ids: one action could be neither
            # confirmed nor reconciled. Queue its videos one by one (type yt).
            raise _invalid("queue", "a YouTube playlist (yp) cannot be one action; queue its videos as yt")
        if self.media_type not in MEDIA_TYPES:
            known = ", ".join(sorted(MEDIA_TYPES))
            raise _invalid("queue", f"unknown media type {self.media_type!r} (known: {known})")
        if not isinstance(self.media_id, str) or not self.media_id.strip():
            raise _invalid("queue", "media_id must be a non-empty string")
        if len(self.media_id) > MAX_MEDIA_ID_CHARS:
            raise _invalid("queue", f"media_id is longer than {MAX_MEDIA_ID_CHARS} characters")
        if self.position not in ("next", "end"):
            raise _invalid("queue", f"position must be 'next' or 'end', not {self.position!r}")
        _check_flag("queue", "temp", self.temp)
        if self.title is not None and not isinstance(self.title, str):
            raise _invalid("queue", f"title must be a string or None, not {type(self.title).__name__}")
        if self.title is not None and self.media_type not in TITLED_TYPES:
            raise _invalid("queue", f"title is kept only for types cu and fi, not {self.media_type}")
        if self.title is not None and not 1 <= len(self.title.strip()) <= MAX_TITLE_CHARS:
            # The server would cut a longer title to 97 characters + "...", so the item would not
            # carry the title the plugin asked for; say so before anything is sent.
            raise _invalid("queue", f"title must be 1-{MAX_TITLE_CHARS} characters (got {len(self.title)})")
        if self.duration is not None:
            if self.media_type not in LIVE_TYPES:
                live = ", ".join(sorted(LIVE_TYPES))
                raise _invalid("queue", f"duration is honoured only for live types ({live})")
            if (isinstance(self.duration, bool) or not isinstance(self.duration, int | float)
                    or not math.isfinite(self.duration) or self.duration <= 0):
                raise _invalid("queue", "duration must be a positive number of seconds")
        if self.media_type == "hl" and not self.media_id.startswith("https://"):
            raise _invalid("queue", "HLS links must start with https:// (the server refuses http)")
        if self.media_type == "cu" and not self.media_id.lstrip().lower().startswith("<iframe"):
            raise _invalid("queue", "a custom embed (cu) must be an <iframe> tag")

    def wire(self) -> tuple[str, Any]:
        payload: dict[str, Any] = {"id": self.media_id, "type": self.media_type, "pos": self.position,
                                   "temp": self.temp}
        if self.title is not None:
            payload["title"] = self.title
        if self.duration is not None:
            payload["duration"] = self.duration
        return "queue", payload

    @property
    def playlist_id(self) -> str:
        """The id the item has on the playlist: a custom embed's is the hash of its HTML."""
        if self.media_type == "cu":
            digest = hashlib.sha256(self.media_id.encode()).digest()
            return "cu:" + base64.b64encode(digest).decode()
        return self.media_id

    def describe(self) -> str:
        return f"queue {self.media_type}:{self.media_id[:60]}"


@dataclass(frozen=True, slots=True)
class DeleteMedia(Action):
    kind: ClassVar[str] = "delete"
    uid: int
    item: str = ""  # the media the uid pointed at when submitted (daz.cytube.action_rules.retarget)

    def validate(self) -> None:
        _check_uid("delete", "uid", self.uid)
        _check_item("delete", "item", self.item)

    def wire(self) -> tuple[str, Any]:
        return "delete", self.uid


@dataclass(frozen=True, slots=True)
class MoveMedia(Action):
    kind: ClassVar[str] = "move"
    uid: int
    after: MoveTarget
    item: str = ""
    after_item: str = ""

    def validate(self) -> None:
        _check_uid("move", "uid", self.uid)
        _check_item("move", "item", self.item)
        _check_item("move", "after_item", self.after_item)
        if self.after not in ("prepend", "append"):
            _check_uid("move", "after", self.after)
        if self.after == self.uid:
            raise _invalid("move", "an item cannot be moved after itself")

    def wire(self) -> tuple[str, Any]:
        return "moveMedia", {"from": self.uid, "after": self.after}


@dataclass(frozen=True, slots=True)
class JumpTo(Action):
    kind: ClassVar[str] = "jump"
    uid: int
    item: str = ""

    def validate(self) -> None:
        _check_uid("jump", "uid", self.uid)
        _check_item("jump", "item", self.item)

    def wire(self) -> tuple[str, Any]:
        return "jumpTo", self.uid


@dataclass(frozen=True, slots=True)
class Skip(Action):
    """Skip the item with ``uid`` (the one playing when the plugin asked): never skips twice."""

    kind: ClassVar[str] = "skip"
    uid: int
    item: str = ""

    def validate(self) -> None:
        _check_uid("skip", "uid", self.uid)
        _check_item("skip", "item", self.item)

    def wire(self) -> tuple[str, Any]:
        return "playNext", None


@dataclass(frozen=True, slots=True)
class SetTemp(Action):
    kind: ClassVar[str] = "set_temp"
    uid: int
    temp: bool
    item: str = ""

    def validate(self) -> None:
        _check_uid("set_temp", "uid", self.uid)
        _check_item("set_temp", "item", self.item)
        _check_flag("set_temp", "temp", self.temp)

    def wire(self) -> tuple[str, Any]:
        return "setTemp", {"uid": self.uid, "temp": self.temp}


@dataclass(frozen=True, slots=True)
class VoteSkip(Action):
    kind: ClassVar[str] = "voteskip"

    def wire(self) -> tuple[str, Any]:
        return "voteskip", None


@dataclass(frozen=True, slots=True)
class NewPoll(Action):
    kind: ClassVar[str] = "new_poll"
    title: str
    options: tuple[str, ...]
    obscured: bool = False
    timeout: int | None = None
    retain_votes: bool = False

    def validate(self) -> None:
        title = self.title
        if not isinstance(title, str) or not title.strip() or len(title) > POLL_MAX_TITLE_CHARS:
            raise _invalid("new_poll", f"title must be 1-{POLL_MAX_TITLE_CHARS} characters")
        if not isinstance(self.options, tuple):
            raise _invalid("new_poll",
                           f"options must be a list of strings, not {type(self.options).__name__}")
        _check_flag("new_poll", "obscured", self.obscured)
        _check_flag("new_poll", "retain_votes", self.retain_votes)
        if not 1 <= len(self.options) <= POLL_MAX_OPTIONS:
            raise _invalid("new_poll", f"a poll has 1-{POLL_MAX_OPTIONS} options, not {len(self.options)}")
        for number, option in enumerate(self.options, start=1):
            if not isinstance(option, str) or not 1 <= len(option) <= POLL_MAX_OPTION_CHARS:
                raise _invalid("new_poll", f"option {number} must be 1-{POLL_MAX_OPTION_CHARS} characters")
        if self.timeout is not None and (
            isinstance(self.timeout, bool) or not isinstance(self.timeout, int)
            or not 1 <= self.timeout <= POLL_MAX_TIMEOUT_SECONDS
        ):
            raise _invalid("new_poll", f"timeout must be 1-{POLL_MAX_TIMEOUT_SECONDS} whole seconds, "
                           f"not {self.timeout!r}")

    def wire(self) -> tuple[str, Any]:
        payload: dict[str, Any] = {"title": self.title, "opts": list(self.options), "obscured": self.obscured}
        if self.timeout is not None:
            payload["timeout"] = self.timeout
        if self.retain_votes:
            payload["retainVotes"] = True
        return "newPoll", payload

    def describe(self) -> str:
        return f"new_poll {self.title[:60]!r}"


@dataclass(frozen=True, slots=True)
class Vote(Action):
    kind: ClassVar[str] = "vote"
    option: int

    def validate(self) -> None:
        if isinstance(self.option, bool) or not isinstance(self.option, int) or self.option < 0:
            raise _invalid("vote", f"option must be an option index (an integer >= 0), not {self.option!r}")

    def wire(self) -> tuple[str, Any]:
        return "vote", {"option": self.option}


@dataclass(frozen=True, slots=True)
class ClosePoll(Action):
    kind: ClassVar[str] = "close_poll"

    def wire(self) -> tuple[str, Any]:
        return "closePoll", None


@dataclass(frozen=True, slots=True)
class _ChatCommand(Action):
    """Moderation goes through chat commands (``/kick name reason``): the server has no event for it."""

    name: str

    def validate(self) -> None:
        _check_name(self.kind, "name", self.name)

    def command(self) -> str:
        raise NotImplementedError

    def wire(self) -> tuple[str, Any]:
        return "chatMsg", {"msg": self.command(), "meta": {}}

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Kick(_ChatCommand):
    kind: ClassVar[str] = "kick"
    reason: str = ""

    def validate(self) -> None:
        _check_name("kick", "name", self.name)
        _check_reason("kick", self.reason)

    def command(self) -> str:
        return f"/kick {self.name} {self.reason}".rstrip()


@dataclass(frozen=True, slots=True)
class Ban(_ChatCommand):
    kind: ClassVar[str] = "ban"
    reason: str = ""

    def validate(self) -> None:
        _check_name("ban", "name", self.name)
        _check_reason("ban", self.reason)

    def command(self) -> str:
        return f"/ban {self.name} {self.reason}".rstrip()


@dataclass(frozen=True, slots=True)
class Mute(_ChatCommand):
    kind: ClassVar[str] = "mute"

    def command(self) -> str:
        return f"/mute {self.name}"


@dataclass(frozen=True, slots=True)
class Unmute(_ChatCommand):
    kind: ClassVar[str] = "unmute"

    def command(self) -> str:
        return f"/unmute {self.name}"


@dataclass(frozen=True, slots=True)
class Unban(Action):
    """Lift ban ``ban_id`` (from the server's ``banlist``) on ``name``."""

    kind: ClassVar[str] = "unban"
    ban_id: int
    name: str

    def validate(self) -> None:
        _check_uid("unban", "ban_id", self.ban_id)
        _check_name("unban", "name", self.name)

    def wire(self) -> tuple[str, Any]:
        return "unban", {"id": self.ban_id, "name": self.name}


@dataclass(frozen=True, slots=True)
class UnbanName(Action):
    """Lift every ban on ``name``. The journal keeps the NAME, never a ban id: the ids are looked up
    in the server's ``banlist`` on the connection that sends the unbans (``daz.cytube.bans``).

    Why not resolve the id when the plugin asks: this action is durable and may go out after a
    reconnect or a restart, by when the id can be stale (the ban lifted by a moderator, the name
    banned again under a new id). CyTube deletes ``WHERE id=?`` and answers ``banlistRemove`` even
    when no row matched (kickban.js handleUnban), so a stale id would be "confirmed" while the user
    stays banned. Resolved at send time, an id is at most one round trip old."""

    kind: ClassVar[str] = "unban_name"
    name: str

    def validate(self) -> None:
        _check_name("unban_name", "name", self.name)

    def wire(self) -> tuple[str, Any]:
        # The first frame only; the rest depends on the answer (ActionSender's unban steps).
        return "requestBanlist", None

    def describe(self) -> str:
        return f"unban_name {self.name}"


@dataclass(frozen=True, slots=True)
class SetAfk(Action):
    """Set the bot's own AFK flag. ``/afk`` toggles, so the replica decides whether to send it at all."""

    kind: ClassVar[str] = "afk"
    afk: bool

    def validate(self) -> None:
        _check_flag("afk", "afk", self.afk)

    def wire(self) -> tuple[str, Any]:
        return "chatMsg", {"msg": "/afk", "meta": {}}


@dataclass(frozen=True, slots=True)
class AssignLeader(Action):
    """Make ``name`` the leader; ``""`` clears the leader."""

    kind: ClassVar[str] = "assign_leader"
    name: str

    def validate(self) -> None:
        if self.name != "":
            _check_name("assign_leader", "name", self.name)

    def wire(self) -> tuple[str, Any]:
        return "assignLeader", {"name": self.name}


ACTION_TYPES: dict[str, type[Action]] = {
    cls.kind: cls for cls in (QueueMedia, DeleteMedia, MoveMedia, JumpTo, Skip, SetTemp, VoteSkip,
                              NewPoll, Vote, ClosePoll, Kick, Ban, Unban, UnbanName, Mute, Unmute,
                              SetAfk, AssignLeader)
}


def to_record(action: Action) -> dict[str, Any]:
    """The action as plain JSON for the journal: ``{"kind": ..., <fields>}``."""
    record = asdict(action)
    if isinstance(action, NewPoll):
        record["options"] = list(action.options)
    return {"kind": action.kind, **record}


def action_from_record(record: dict[str, Any]) -> Action:
    """Rebuild (and re-validate) an action from its journal record; ``ActionInvalid`` if it is not one."""
    kind = record.get("kind")
    cls = ACTION_TYPES.get(str(kind))
    if cls is None:
        raise _invalid(str(kind), "not a known action kind")
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in record.items() if k in names}
    if cls is NewPoll and isinstance(values.get("options"), list):
        values["options"] = tuple(values["options"])
    try:
        action = cls(**values)
    except TypeError as exc:
        raise _invalid(str(kind), f"bad record ({exc})") from exc
    action.validate()
    return action
