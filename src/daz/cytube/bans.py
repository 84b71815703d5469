"""The channel's ban list: asking the server for it, and the pure step that turns an unban by name
into the unban of one ban id.

CyTube reveals ban ids only through ``requestBanlist`` → ``banlist``, and answers it only to users with
the ``ban`` permission in a registered channel; anyone else gets silence (kickban.js sendBanlist). So a
query checks the permission on the live replica first (``ActionNotPermitted`` at once, nothing sent),
then asks over the room's session with a timeout (``BanlistUnanswered`` when no answer comes).
"""

from __future__ import annotations

from daz.cytube.action_rules import Plan, SendDecision, check_key
from daz.cytube.actions import Unban, UnbanName
from daz.cytube.ban_wire import Banlist
from daz.cytube.channel import ChannelState
from daz.cytube.protocol import Malformed, ServerEvent
from daz.cytube.session import Session
from daz.errors import ActionError, ActionInvalid, ActionNotPermitted, BanlistUnanswered

KIND = "banlist"


def check_banlist(state: ChannelState) -> ActionNotPermitted | None:
    """Why the bot would get no ``banlist`` on ``state`` (no ``ban`` permission, or an unregistered
    channel, which has no ``ban`` key at all); None when it may ask. Pure."""
    return check_key("ban", state, what="banlist", kind=KIND)


def _banlist_answer(event: ServerEvent) -> Banlist | Malformed | None:
    if isinstance(event, Banlist):
        return event
    if isinstance(event, Malformed) and event.event == "banlist":
        return event  # already reported as protocol.malformed by the session; fail now, not at the timeout
    return None


async def fetch_banlist(session: Session, *, room: str, timeout: float) -> Banlist:
    """Send ``requestBanlist`` on ``session`` and return the server's answer.

    Raises ``BanlistUnanswered`` after ``timeout`` seconds of silence, ``ActionError`` when the answer
    is malformed, or the transport's error when the connection ends first."""
    try:
        answer: Banlist | Malformed = await session.ask(
            "requestBanlist", None, _banlist_answer, timeout=timeout, label=f"room.{room}.banlist")
    except TimeoutError as exc:
        raise BanlistUnanswered(
            f"banlist: room {room}: the server did not answer requestBanlist within {timeout:g}s. CyTube "
            "answers only users with the 'ban' permission in a registered channel (daz checked the bot's "
            "rank on its replica first), so the server is slow or the permission changed a moment ago; "
            "ask again later", kind=KIND, operation_type="cytube_query") from exc
    if isinstance(answer, Malformed):
        raise ActionError(f"banlist: room {room}: the server's banlist reply was malformed "
                          f"({answer.detail}); reported as protocol.malformed", retryable=False,
                          kind=KIND, operation_type="cytube_query")
    return answer


def resolve_unban(action: UnbanName, banlist: Banlist, *, lifted: frozenset[int],
                  in_doubt: bool) -> Unban | SendDecision:
    """The next unban to send for ``action``, or the decision when no ban on its name is left. Pure.

    ``lifted``: ids this delivery saw confirmed (``banlistRemove``) already; ``in_doubt``: an earlier
    send (this process's before a reconnect, or a previous process's) may have lifted bans. Either way
    an empty list then means done; otherwise the name was never banned, and the action fails naming it.
    A lifted id listed again fails it too: the loop over the list must end even if the server lies."""
    rows = banlist.named(action.name)
    if rows:
        row = rows[0]
        if row.id in lifted:
            error = ActionError(f"{action.describe()}: the server confirmed lifting ban {row.id} but still "
                                "lists it", retryable=False, kind=action.kind, operation_type="cytube_action")
            return SendDecision(Plan.FAIL, str(error), error)
        return Unban(row.id, row.name)
    if lifted:
        return SendDecision(Plan.DONE, f"unbanned ({len(lifted)} ban(s) on {action.name} lifted)")
    if in_doubt:
        return SendDecision(Plan.DONE, f"in doubt; {action.name} is no longer on the banlist")
    error = ActionInvalid(f"{action.describe()}: {action.name} is not on the channel's banlist "
                          "(nothing to unban; names are compared case-insensitively)",
                          retryable=False, kind=action.kind, operation_type="cytube_action")
    return SendDecision(Plan.FAIL, str(error), error)
