"""The ban list: parsing ``banlist``/``banlistRemove`` (addresses dropped at the boundary), the pure
unban-by-name step, and ``unban_name`` delivered over a real ``Session`` on a scripted FakeTransport."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.unit.cytube.test_action_flight import deliver, line, rig
from tests.unit.cytube.test_action_rules import facts

from daz.config import CytubeConfig
from daz.cytube.action_flight import NO_REPLY
from daz.cytube.action_rules import Plan, SendDecision, decide_send
from daz.cytube.actions import Unban, UnbanName, action_from_record, to_record
from daz.cytube.ban_wire import BanEntry, Banlist, BanRemoved
from daz.cytube.bans import check_banlist, fetch_banlist, resolve_unban
from daz.cytube.protocol import Malformed, metric_event_label, parse
from daz.cytube.session import Credentials, Session
from daz.errors import (
    ActionError,
    ActionInvalid,
    ActionNotPermitted,
    ActionUnanswered,
    BanlistUnanswered,
    ServerDisconnected,
)
from daz.metrics import DazMetrics
from daz.testing.clock import FakeClock
from daz.testing.fake_transport import FakeNetwork

REAL_IP = "203.0.113.77"


def row(ban_id: int, name: str, ip: str = "*", reason: str = "spam", by: str = "mod") -> dict[str, Any]:
    return {"id": ban_id, "ip": ip, "name": name, "reason": reason, "bannedby": by}


# parsing ----------------------------------------------------------------------------------------

def test_a_banlist_is_typed_and_its_addresses_never_kept() -> None:
    rows = [row(1, "troll"), row(2, "troll", ip=REAL_IP), row(3, "other") | {"reason": None}]
    event = parse("banlist", rows)
    assert event == Banlist((
        BanEntry(1, "troll", "spam", "mod", ip_ban=False),
        BanEntry(2, "troll", "spam", "mod", ip_ban=True),
        BanEntry(3, "other", "", "mod", ip_ban=False),
    ))
    assert REAL_IP not in repr(event)
    assert isinstance(event, Banlist)
    assert [e.id for e in event.named("TROLL")] == [1, 2]  # case-insensitive, every row of the name
    assert event.named("nobody") == ()
    assert parse("banlistRemove", {"id": 2, "name": "troll"}) == BanRemoved(2, "troll")
    labels = (metric_event_label("banlist"), metric_event_label("banlistRemove"))
    assert labels == ("banlist", "banlistRemove")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("banlist", {"id": 1}),  # not a list
        ("banlist", [row(1, "troll") | {"id": "1"}]),
        ("banlist", [row(1, "troll") | {"id": True}]),
        ("banlist", [row(1, "troll") | {"id": -1}]),
        ("banlist", [row(1, "troll") | {"name": None}]),
        ("banlist", [row(1, "troll") | {"bannedby": 5}]),
        ("banlist", [row(1, "troll") | {"reason": 5}]),
        ("banlist", [row(1, "troll"), "troll"]),
        ("banlist", [{k: v for k, v in row(1, "troll").items() if k != "ip"}]),
        ("banlistRemove", {"id": "2", "name": "troll"}),
        ("banlistRemove", {"id": 2}),
    ],
)
def test_a_malformed_ban_frame_is_malformed_never_an_exception(name: str, data: Any) -> None:
    event = parse(name, data)
    assert isinstance(event, Malformed)
    assert event.event == name


def test_the_detail_of_a_malformed_banlist_never_carries_an_address() -> None:
    event = parse("banlist", [row(1, "troll", ip=REAL_IP) | {"name": 7}])
    assert isinstance(event, Malformed)
    assert REAL_IP not in event.detail


# the pure step ------------------------------------------------------------------------------------

LIST = Banlist((BanEntry(4, "other", "", "mod", False), BanEntry(7, "troll", "", "mod", False),
                BanEntry(9, "troll", "", "mod", True)))


def test_resolve_unban_picks_the_first_row_of_the_name_and_ends_when_none_is_left() -> None:
    assert resolve_unban(UnbanName("Troll"), LIST, lifted=frozenset(), in_doubt=False) == Unban(7, "troll")
    relisted = resolve_unban(UnbanName("troll"), LIST, lifted=frozenset({7}), in_doubt=False)
    assert isinstance(relisted, SendDecision)
    assert (relisted.plan, relisted.reason) == (
        Plan.FAIL, "unban_name troll: the server confirmed lifting ban 7 but still lists it")
    empty = Banlist(())
    done = resolve_unban(UnbanName("troll"), empty, lifted=frozenset({7, 9}), in_doubt=False)
    assert isinstance(done, SendDecision)
    assert (done.plan, done.reason) == (Plan.DONE, "unbanned (2 ban(s) on troll lifted)")
    doubt = resolve_unban(UnbanName("troll"), empty, lifted=frozenset(), in_doubt=True)
    assert isinstance(doubt, SendDecision)
    assert doubt.plan is Plan.DONE
    never = resolve_unban(UnbanName("troll"), Banlist(LIST.entries[:1]), lifted=frozenset(), in_doubt=False)
    assert isinstance(never, SendDecision)
    assert never.plan is Plan.FAIL
    assert isinstance(never.error, ActionInvalid)
    assert "troll is not on the channel's banlist" in str(never.error)


def test_unban_name_is_validated_journalled_by_name_only_and_needs_the_ban_permission() -> None:
    with pytest.raises(ActionInvalid, match="unban_name: name 'no way' is not a CyTube user name"):
        UnbanName("no way").validate()
    record = to_record(UnbanName("Troll"))
    assert record == {"kind": "unban_name", "name": "Troll"}  # never an id: resolved at send time
    assert action_from_record(record) == UnbanName("Troll")
    denied = decide_send(UnbanName("troll"), facts(1.5), in_doubt=False)
    assert isinstance(denied.error, ActionNotPermitted)
    assert (denied.error.key, denied.error.needed) == ("ban", 2)
    assert decide_send(UnbanName("troll"), facts(2), in_doubt=False).plan is Plan.SEND


def test_banlist_permission_names_the_ban_key_and_an_unregistered_channel() -> None:
    assert check_banlist(facts(2)) is None
    low = check_banlist(facts(1))
    assert low is not None
    assert str(low) == "banlist: permission 'ban' needs rank 2; the bot has rank 1"
    unregistered = check_banlist(facts(255, perms={"chat": 0}))
    assert unregistered is not None
    assert unregistered.needed is None
    assert "does not exist in this channel (unregistered channels lack it)" in str(unregistered)


# unban_name delivered ----------------------------------------------------------------------------

class BanServer:
    """A scripted CyTube ban list: answers requestBanlist and unban as kickban.js does."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.answer_banlist = True

    def script(self, r: Any) -> Any:
        def answer(event: str, data: Any) -> None:
            if event == "requestBanlist" and self.answer_banlist:
                r.reply("banlist", [dict(x) for x in self.rows])
            elif event == "unban":
                self.rows = [x for x in self.rows if x["id"] != data["id"]]
                r.reply("banlistRemove", data)  # echoed even for an id that no longer existed

        return answer


async def test_unban_name_lifts_every_ban_on_the_name_by_the_ids_the_server_lists_now() -> None:
    bans = BanServer([row(1, "other"), row(5, "troll"), row(6, "troll", ip=REAL_IP)])
    async with rig(facts(2)) as r:
        r.script = bans.script(r)
        done = await deliver(r, UnbanName("TROLL"))
    assert done.error is None
    assert done.detail == "unbanned (2 ban(s) on TROLL lifted)"
    assert r.emitted() == [("requestBanlist", None), ("unban", {"id": 5, "name": "troll"}),
                           ("requestBanlist", None), ("unban", {"id": 6, "name": "troll"}),
                           ("requestBanlist", None)]
    assert [x["name"] for x in bans.rows] == ["other"]
    assert r.published[-1][0] == "room.action.confirmed"


async def test_unban_name_of_a_name_not_banned_fails_naming_it_and_sends_no_unban() -> None:
    bans = BanServer([row(1, "other")])
    async with rig(facts(2)) as r:
        r.script = bans.script(r)
        done = await deliver(r, UnbanName("troll"))
    assert isinstance(done.error, ActionInvalid)
    assert "troll is not on the channel's banlist" in str(done.error)
    assert r.emitted() == [("requestBanlist", None)]


async def test_unban_name_in_doubt_with_the_name_gone_from_the_list_is_reconciled() -> None:
    bans = BanServer([row(1, "other")])
    async with rig(facts(2)) as r:
        r.script = bans.script(r)
        await r.outbox.put(line(UnbanName("troll")))
        head = r.outbox.head()
        assert head is not None
        r.outbox.mark_sent(1)  # a previous send may have lifted it before the connection dropped
        await asyncio.wait_for(r.sender.deliver(r.session, head), 1)
        done = r.settled[-1]
    assert done.error is None
    assert done.detail == "in doubt; troll is no longer on the banlist"
    assert r.emitted() == [("requestBanlist", None)]


async def test_unban_name_without_a_banlist_answer_fails_after_bounded_silence_and_unbans_nothing() -> None:
    bans = BanServer([row(5, "troll")])
    bans.answer_banlist = False
    async with rig(facts(2), timeout=5, retries=1) as r:
        r.script = bans.script(r)
        done = await deliver(r, UnbanName("troll"), advance=1.0)
    assert isinstance(done.error, ActionUnanswered)
    assert NO_REPLY in str(done.error)
    assert r.emitted() == [("requestBanlist", None)] * 2
    assert [x["id"] for x in bans.rows] == [5]


async def test_an_id_based_unban_still_goes_out_as_given() -> None:
    bans = BanServer([row(5, "troll")])
    async with rig(facts(2)) as r:
        r.script = bans.script(r)
        done = await deliver(r, Unban(5, "troll"))
    assert (done.error, done.detail) == (None, "unbanned")
    assert r.emitted() == [("unban", {"id": 5, "name": "troll"})]


# the query over a session ------------------------------------------------------------------------

async def session_rig() -> tuple[FakeClock, Any, Session, list[tuple[str, dict[str, Any]]]]:
    clock = FakeClock()
    transport = FakeNetwork().factory("lobby", clock)
    await transport.connect("fake://lobby", timeout=1)
    published: list[tuple[str, dict[str, Any]]] = []
    session = Session(room="lobby", channel="lobby", credentials=Credentials("DazBot"), transport=transport,
                      clock=clock, config=CytubeConfig(), metrics=DazMetrics(),
                      publish=lambda n, d: published.append((n, d)))
    return clock, transport, session, published


async def run_query(clock: FakeClock, session: Session, reply: Any, *, timeout: float = 5.0) -> Any:
    """Ask for the banlist, then ``reply()`` as the server; the answer, or raises the query's error."""
    outcome: list[Any] = []

    async def ask() -> None:
        try:
            outcome.append(await fetch_banlist(session, room="lobby", timeout=timeout))
        except Exception as exc:
            outcome.append(exc)

    async with asyncio.TaskGroup() as tg:
        pump = tg.create_task(session.pump(), name="test.pump")
        query = tg.create_task(ask(), name="test.query")
        await clock.advance(0)
        reply()
        for _ in range(20):
            if query.done():
                break
            await clock.advance(1.0)
        await asyncio.wait_for(query, 1)
        pump.cancel()
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


async def test_fetch_banlist_returns_the_answer_and_publishes_it_without_addresses() -> None:
    clock, transport, session, published = await session_rig()
    got = await run_query(clock, session, lambda: transport.push("banlist", [row(3, "troll", ip=REAL_IP)]))
    assert got == Banlist((BanEntry(3, "troll", "spam", "mod", ip_ban=True),))
    assert transport.emitted[-1] == ("requestBanlist", None)
    assert [n for n, _ in published if n != "cytube.rank"] == ["cytube.banlist"]
    assert REAL_IP not in repr(published)


async def test_a_malformed_banlist_is_reported_and_fails_the_query_at_once() -> None:
    clock, transport, session, published = await session_rig()
    with pytest.raises(ActionError, match="banlist reply was malformed") as info:
        await run_query(clock, session, lambda: transport.push("banlist", [{"id": "x", "ip": REAL_IP}]))
    assert not isinstance(info.value, BanlistUnanswered)
    assert clock.monotonic() < 5  # not at the timeout
    assert [n for n, _ in published if n != "cytube.rank"] == ["protocol.malformed"]
    assert REAL_IP not in str(info.value)


async def test_silence_is_banlist_unanswered_after_the_timeout() -> None:
    clock, _, session, _ = await session_rig()
    with pytest.raises(BanlistUnanswered, match="did not answer requestBanlist within 3s") as info:
        await run_query(clock, session, lambda: None, timeout=3)
    assert "'ban' permission in a registered channel" in str(info.value)
    assert 3 <= clock.monotonic() <= 5


async def test_a_connection_lost_while_asking_is_the_transport_error_not_a_hang() -> None:
    clock, transport, session, _ = await session_rig()
    with pytest.raises(ServerDisconnected):
        await run_query(clock, session, transport.drop)
    assert clock.monotonic() < 5
