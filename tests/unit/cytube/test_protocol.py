"""Wire payloads → typed events; never an exception."""

from __future__ import annotations

import html

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


def _runs_as_command(wire: str) -> bool:
    """CyTube's rule (protocol notes): the FIRST character "/" makes a chat line a command."""
    return wire.startswith("/")


def test_a_line_cytube_would_run_as_a_command_is_neutralised_and_its_echo_still_matches() -> None:
    for text in ("/kick someone", "/ban x", "/clear", "/me waves", "//kick x", "/toString"):
        wire = p.neutralise_command(text)
        assert not _runs_as_command(wire)
        assert wire.strip() == text  # nothing visible changes
        # The echo comes back HTML-escaped; it still confirms the line.
        echoed = html.escape(wire).replace("/", "&#x2F;")
        assert p.echo_key(echoed) == p.chat_key(wire)
    assert p.neutralise_command("hello /kick x") == "hello /kick x"  # only the first character counts
    assert p.neutralise_command(" /kick x") == " /kick x"  # already text: no second guard


def test_chat_lines_guard_every_continuation_and_still_fit_the_limit() -> None:
    text = "a" * 315 + " /kick someone " + "b" * 305 + " /ban " + "c" * 314
    lines = p.chat_lines(text, 320)
    assert len(lines) == 3
    assert all(len(line) <= 320 for line in lines)
    assert not any(_runs_as_command(line) for line in lines)
    assert lines[1].startswith(" /kick someone")
    assert lines[2] == " /ban " + "c" * 314  # exactly the limit, guard included
    assert " ".join(line.strip() for line in lines) == text
    # A line that would start with "/" and exactly fill the limit is cut one short for its guard.
    assert p.chat_lines("/" + "x" * 319, 320) == [" /" + "x" * 318, "x"]
    # Switched off (no guard), the continuation would run as a command: the test above can fail.
    assert any(_runs_as_command(part) for part in p.split_line(text, 320))


def test_an_explicit_action_is_an_emote_whose_text_cannot_run_a_command() -> None:
    assert p.chat_lines("waves", 320, action=True) == ["/me waves"]
    [line] = p.chat_lines("/kick someone", 320, action=True)
    assert line == "/me  /kick someone"  # CyTube re-checks the emote's text: it is guarded too
    assert not _runs_as_command(line.removeprefix(p.ACTION_PREFIX))
    assert p.chat_key(line) == p.echo_key(" /kick someone")  # the echo carries the text alone
    assert all(len(x) <= 50 for x in p.chat_lines("y " * 100, 50, action=True))


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
