"""``ctx.actions`` / ``RoomManager.submit_action``: validation before queueing, durable queueing in
order with chat lines, tickets settled by the room's action sender."""

from __future__ import annotations

import pytest
from tests.unit.cytube.conftest import harness, make_config

from daz.cytube.action_flight import ActionSettled
from daz.cytube.room_actions import RoomActions
from daz.errors import ActionInvalid, ActionRefused, DazError
from daz.testing.fake_transport import FakeNetwork


async def test_invalid_actions_raise_and_queue_nothing_valid_ones_queue_in_order_with_lines() -> None:
    network = FakeNetwork(reachable=False)  # the room stays offline: everything waits in the outbox
    async with harness(make_config(), network) as h:
        actions = RoomActions(h.manager)
        outbox = h.manager.supervisor("lobby").outbox
        with pytest.raises(ActionInvalid, match="unknown media type 'zz'"):
            await actions.queue("lobby", "zz", "abc")
        with pytest.raises(ActionInvalid, match="1-50 options, not 0"):
            await actions.new_poll("lobby", "Empty?", [])
        for options in (None, "abc", 5):  # wrong type: the error, not a TypeError or a 3-option poll
            with pytest.raises(ActionInvalid, match="options must be a list of strings"):
                await actions.new_poll("lobby", "Wrong?", options)  # type: ignore[arg-type]
        with pytest.raises(ActionInvalid, match="nothing is playing"):
            await actions.skip("lobby")  # no replica yet: no current item to name
        assert outbox.depth == 0
        await h.manager.send_chat("lobby", "first a line")
        ticket = await actions.queue("lobby", "rt", "rtmp://x/a", duration=30)
        poll = await actions.new_poll("lobby", "Lunch?", ["pizza", "soup"], timeout=60)
        await h.manager.send_chat("lobby", "then a line")
        kinds = [line.kind for line in await h.manager.journal.load("lobby")]
        assert kinds == ["chat", "action", "action", "chat"]  # one order, journalled
        assert not ticket.done
        with pytest.raises(TimeoutError):
            await ticket.result(timeout=0.01)  # not settled yet: still queued, not lost
        h.manager._action_settled(ActionSettled(ticket.key, "lobby", "queue", "queued", uid=7))
        h.manager._action_settled(ActionSettled(poll.key, "lobby", "new_poll", "refused", error=ActionRefused(
            "new_poll: refused by the server: nope", server_message="nope", category="refused")))
        done = await ticket.result(timeout=1)
        assert (done.detail, done.uid) == ("queued", 7)
        with pytest.raises(ActionRefused, match="nope"):
            await poll.result(timeout=1)
    metric = h.metrics.actions.labels(room="lobby", kind="queue", outcome="queued")._value.get()
    assert metric == 1


async def test_an_unknown_room_is_one_clear_daz_error() -> None:
    # A plugin's typo in the room name: a DazError (the command framework answers it instead of
    # crashing the plugin), its message the plain sentence (not a KeyError's quoted repr).
    network = FakeNetwork(reachable=False)
    async with harness(make_config(), network) as h:
        actions = RoomActions(h.manager)
        with pytest.raises(DazError) as info:
            await actions.queue("no-such-room", "yt", "abc")
        assert isinstance(info.value, KeyError)  # callers catching KeyError keep working
        assert str(info.value) == "no room named 'no-such-room' is configured"
        assert h.manager.supervisor("lobby").outbox.depth == 0
