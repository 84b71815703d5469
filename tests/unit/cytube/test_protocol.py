"""Wire payloads → typed events; never an exception."""

from __future__ import annotations

import pytest

from daz.cytube import channel_wire as cw
from daz.cytube import protocol as p
from daz.cytube.discovery import pick_server
from daz.errors import ConnectFailed


def test_chat_is_decoded_and_raw_is_kept() -> None:
    event = p.parse(
        "chatMsg", {"username": "a", "msg": 'x &lt;b&gt; <a href="u">u</a> &amp;', "meta": {}, "time": 5}
    )
    assert isinstance(event, p.ChatMessage)
    assert event.text == "x <b> u &"
    assert event.raw.startswith("x &lt;b&gt;")
    assert p.echo_key(event.raw) == p.sent_key("x <b> u &")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("chatMsg", None),
        ("chatMsg", {"username": 1, "msg": "x", "time": 1}),
        ("chatMsg", "text"),
        ("login", {"success": "yes"}),
        ("usercount", "many"),
        ("userlist", {"a": 1}),
        ("chatMsg", {"username": "u", "msg": "y" * 20_000, "time": 1}),
        ("mediaUpdate", [1, 2]),
    ],
)
def test_malformed_payloads_become_malformed_events(name: str, data: object) -> None:
    event = p.parse(name, data)
    assert isinstance(event, p.Malformed)
    assert event.event == name
    assert event.size == p.raw_size(data)


def test_unknown_events_pass_through_and_secrets_are_removed() -> None:
    assert p.parse("somethingNew", {"a": 1}) == p.GenericEvent("somethingNew", {"a": 1})
    opts = p.parse("channelOpts", {"password": "hunter2", "allow_voteskip": True})
    assert opts == cw.ChannelOptions((("allow_voteskip", True),))
    assert p.metric_event_label("somethingNew") == "other"
    assert p.metric_event_label("chatMsg") == "chatMsg"


def test_media_liveness() -> None:
    live = p.parse("changeMedia", {"id": "c", "type": "cu", "title": "t", "seconds": 0, "currentTime": 0})
    vod = p.parse("changeMedia", {"id": "v", "type": "yt", "title": "t", "seconds": 90, "currentTime": -3})
    assert isinstance(live, p.MediaChanged)
    assert isinstance(vod, p.MediaChanged)
    assert live.live
    assert not vod.live


def test_split_line_respects_the_limit_and_words() -> None:
    text = " ".join(f"word{i}" for i in range(200))
    parts = p.split_line(text, 320)
    assert all(len(part) <= 320 for part in parts)
    assert " ".join(parts) == text
    assert p.split_line("x" * 700, 320) == ["x" * 320, "x" * 320, "x" * 60]
    assert p.split_line("   \n  ", 320) == []


def test_pick_server_prefers_secure() -> None:
    doc = {"servers": [{"url": "http://a:80", "secure": False}, {"url": "https://b:443", "secure": True}]}
    assert pick_server(doc) == "https://b:443"
    assert pick_server({"servers": [{"url": "http://a:80"}]}) == "http://a:80"
    with pytest.raises(ConnectFailed):
        pick_server({"servers": []})


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("cooldown", float("inf")),
        ("cooldown", float("nan")),
        ("rank", float("-inf")),
        ("rank", float("nan")),
        ("chatMsg", {"username": "a", "msg": "b", "meta": {}, "time": float("inf")}),
        ("pm", {"username": "a", "to": "b", "msg": "c", "meta": {}, "time": float("-inf")}),
        ("pm", {"username": "a", "to": "b", "msg": "c", "meta": {}, "time": float("nan")}),
        ("addUser", {"name": "a", "rank": float("inf")}),
        ("changeMedia", {"id": "i", "type": "yt", "title": "t", "seconds": float("inf")}),
        ("mediaUpdate", {"currentTime": float("nan"), "paused": False}),
    ],
)
def test_non_finite_numbers_are_malformed_not_exceptions(name: str, data: object) -> None:
    # Regression (fuzzer): json.loads accepts Infinity/NaN, and int(inf) raised OverflowError.
    event = p.parse(name, data)
    assert isinstance(event, p.Malformed)
    assert event.event == name
    assert "finite" in event.detail or "not a number" in event.detail


def test_plain_and_escaped_chat_decode_the_same_way_as_before() -> None:
    for raw in ("plain words", "a &amp; b", 'see <a href="x">x</a>', "&lt;b&gt;"):
        event = p.parse("chatMsg", {"username": "u", "msg": raw, "meta": {}, "time": 1})
        assert isinstance(event, p.ChatMessage)
        assert event.text == p.html.unescape(p._TAG.sub("", raw))


def test_server_chosen_event_names_become_one_bus_segment() -> None:
    from daz.cytube.protocol import bus_segment

    assert bus_segment("setMotd") == "setMotd"
    assert bus_segment("a.b.c") == "a_b_c"
    assert bus_segment("**") == "__"
    assert bus_segment("") == "_"
