from __future__ import annotations

from datetime import UTC, datetime

import pytest
from plugin_fakes import FakeSql, chat, running_host, wait_for

from daz.errors import ConfigError
from daz.events.bus import Event
from daz.plugins.chatlog import INSERT_SQL, ChatlogPlugin, row_for
from daz.plugins.states import PluginState
from daz.testing import FakeClock


def _event(name: str, data: dict[str, object], ms: int = 0) -> Event:
    ts = datetime.fromtimestamp(1_800_000_000 + ms / 1000, UTC)
    return Event(name=name, data=data, correlation_id=None, source=None, timestamp=ts)


def test_backlog_replay_of_a_line_has_the_same_key_as_the_live_line() -> None:
    live = row_for("chat", _event("cytube.chat", chat("lobby", "al", "hi", 1234), ms=1))
    replay = row_for("chat", _event("cytube.chat", chat("lobby", "al", "hi", 1234, backlog=True), ms=99))
    other = row_for("chat", _event("cytube.chat", chat("lobby", "al", "hi", 1235), ms=1))
    assert live is not None
    assert replay is not None
    assert other is not None
    assert live[0] == replay[0]
    assert live[0] != other[0]
    assert live[1:] == ("lobby", "chat", "al", None, "hi", None, 1234)


def test_rows_for_pm_join_leave_and_media() -> None:
    pm = row_for("pm", _event("cytube.pm", {"room": "r", "event": {
        "username": "a", "to": "b", "text": "psst", "time_ms": 5}}))
    assert pm is not None
    assert pm[2:] == ("pm", "a", "b", "psst", None, 5)
    join = row_for("join", _event("cytube.user.joined", {"room": "r", "event": {"name": "z"}}, ms=7))
    assert join is not None
    assert join[2:4] == ("join", "z")
    media = row_for("media", _event("cytube.media.changed", {"room": "r", "event": {
        "media_id": "dQw", "media_type": "yt", "title": "Song", "seconds": 212}}))
    assert media is not None
    assert media[4:6] == ("dQw", "Song")
    assert row_for("chat", _event("cytube.chat", {"event": {"text": "no room"}})) is None


def test_insert_is_idempotent_sql() -> None:
    assert "ON CONFLICT (idempotency_key) DO NOTHING" in INSERT_SQL


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        ChatlogPlugin({"batch_size": 0})
    assert info.value.problems[0].startswith("plugins.chatlog.batch_size:")


async def test_batches_and_survives_a_database_outage_without_loss_or_duplicates() -> None:
    clock = FakeClock()
    sql = FakeSql()
    async with running_host({"chatlog": {"batch_size": 10, "flush_interval_seconds": 1}},
                            clock=clock, sql=sql) as (host, bus, _):
        for i in range(25):
            bus.publish("cytube.chat", chat("lobby", "u", f"line {i}", 1000 + i))
        await bus.drain()
        # Full batches go at once; a partial batch waits for the flush interval at the latest.
        await wait_for(lambda: len(sql.rows) >= 20)
        await clock.advance(1)
        await wait_for(lambda: len(sql.rows) == 25)
        assert max(sql.batch_sizes) == 10
        assert len(sql.batch_sizes) == 3
        # The database goes away: batches fail and are retried with backoff until it is back.
        sql.fail_next = 4
        for i in range(25, 40):
            bus.publish("cytube.chat", chat("lobby", "u", f"line {i}", 1000 + i))
        # The backlog replay after a reconnect repeats lines that are already stored.
        for i in range(30, 40):
            bus.publish("cytube.chat", chat("lobby", "u", f"line {i}", 1000 + i, backlog=True))
        await bus.drain()
        for _ in range(60):
            await clock.advance(1)
            if len(sql.rows) == 40 and sql.fail_next == 0:
                break
        assert sql.fail_next == 0
        assert len(sql.rows) == 40
        assert host.statuses["chatlog"].state is PluginState.RUNNING
    texts = sorted(row[5] for row in sql.rows.values())
    assert texts == sorted(f"line {i}" for i in range(40))


async def test_rows_left_at_stop_are_flushed() -> None:
    clock = FakeClock()
    sql = FakeSql()
    async with running_host({"chatlog": {"batch_size": 100, "flush_interval_seconds": 60}},
                            clock=clock, sql=sql) as (_, bus, _):
        bus.publish("cytube.pm", {"room": "r", "event": {"username": "a", "to": "b", "text": "x",
                                                         "time_ms": 1}})
        await bus.drain()
        assert sql.rows == {}
    assert len(sql.rows) == 1


async def test_permanently_failing_rows_do_not_wedge_the_log() -> None:
    clock = FakeClock()
    sql = FakeSql()
    async with running_host({"chatlog": {"batch_size": 1, "flush_interval_seconds": 1}},
                            clock=clock, sql=sql) as (host, bus, _):
        sql.permanent = True
        bus.publish("cytube.chat", chat("lobby", "u", "bad", 1))
        await bus.drain()
        await wait_for(lambda: sql.calls == 1)
        sql.permanent = False
        bus.publish("cytube.chat", chat("lobby", "u", "good", 2))
        await bus.drain()
        await wait_for(lambda: len(sql.rows) == 1)
        plugin_rows = [row[5] for row in sql.rows.values()]
        assert plugin_rows == ["good"]
        assert host.statuses["chatlog"].restarts == 0


async def test_a_batch_queued_by_the_sql_service_leaves_the_buffer_once() -> None:
    clock = FakeClock()
    sql = FakeSql()
    async with running_host({"chatlog": {"batch_size": 5, "flush_interval_seconds": 1}},
                            clock=clock, sql=sql) as (host, bus, _):
        sql.queue_next = 1
        for i in range(5):
            bus.publish("cytube.chat", chat("lobby", "u", f"q{i}", i))
        await bus.drain()
        await wait_for(lambda: len(sql.queued) == 1)
        await clock.advance(5)
        bus.publish("cytube.chat", chat("lobby", "u", "after", 99))
        await bus.drain()
        await clock.advance(1)
        await wait_for(lambda: len(sql.rows) == 1)
        plugin = host.statuses["chatlog"]
        assert plugin.restarts == 0
    # The queued batch is the retry queue's now: never written again by the plugin.
    assert [r[5] for r in sql.queued[0]] == [f"q{i}" for i in range(5)]
    assert [r[5] for r in sql.rows.values()] == ["after"]


async def test_the_current_media_reannounced_on_rejoin_is_logged_once() -> None:
    clock = FakeClock()
    sql = FakeSql()
    media = {"media_id": "abc", "media_type": "yt", "title": "T", "seconds": 10}
    async with running_host({"chatlog": {"batch_size": 1}}, clock=clock, sql=sql) as (_, bus, _):
        bus.publish("cytube.media.changed", {"room": "r", "event": media})
        await clock.advance(1)
        bus.publish("cytube.media.changed", {"room": "r", "event": media})
        await clock.advance(1)
        bus.publish("cytube.media.changed", {"room": "r", "event": {**media, "media_id": "next"}})
        await bus.drain()
        await wait_for(lambda: len(sql.rows) == 2)
    assert sorted(row[4] for row in sql.rows.values()) == ["abc", "next"]


@pytest.mark.parametrize("log_backlog", [True, False])
@pytest.mark.parametrize(
    ("kind", "payload", "extra"),
    [
        ("chat", {"username": "al", "msg": "hi &amp; <b>x</b>", "time": 1234, "meta": {}}, {}),
        ("chat", {"username": "al", "msg": "/me waves", "time": 5, "meta": {"action": True, "z": [1]}}, {}),
        ("chat", {"username": "al", "msg": "old", "time": 7, "meta": {}}, {"backlog": True}),
        ("chat", {"username": "", "msg": "", "time": 0, "meta": {}}, {"own": True}),
        ("pm", {"username": "al", "to": "Bot", "msg": "psst", "time": 9, "meta": {}}, {}),
        ("pm", {"username": "al", "to": "Bot", "msg": "psst", "time": 9, "meta": {}}, {"backlog": True}),
    ],
)
def test_fast_chat_row_is_exactly_the_general_row(
    kind: str, payload: dict[str, object], extra: dict[str, object], log_backlog: bool
) -> None:
    # The fast path must never change an idempotency key: a changed key would duplicate every line
    # CyTube replays in its join backlog.
    from daz.cytube import protocol
    from daz.plugins.base import event_fields
    from daz.plugins.chatlog import fast_chat_row

    parsed = protocol.parse("chatMsg" if kind == "chat" else "pm", payload)
    assert isinstance(parsed, protocol.ChatMessage | protocol.PrivateMessage)
    data = {"room": "lobby", "event": parsed, "backlog": False, "own": False} | extra
    event = _event(f"cytube.{kind}", data)
    fields = event_fields(event)
    skipped = fields.get("backlog") and (kind != "chat" or not log_backlog)
    expected = None if skipped else row_for(kind, event, fields)
    assert fast_chat_row(kind, event, log_backlog=log_backlog) == expected
    if not skipped:
        assert expected is not None


def test_fast_chat_row_leaves_other_shapes_to_the_general_path() -> None:
    from daz.plugins.chatlog import fast_chat_row

    as_dict = _event("cytube.chat", chat("lobby", "al", "hi", 1234))
    assert fast_chat_row("chat", as_dict, log_backlog=True) is False
    assert fast_chat_row("join", _event("cytube.user.joined", {"room": "r"}), log_backlog=True) is False
