"""The status page's room card data: bounded, plain, decoded text, position extrapolated."""

from __future__ import annotations

import json

from channel_payloads import feed, item, join_sequence, user

from daz.cytube import protocol
from daz.cytube.channel import ChannelState, apply
from daz.cytube.channel.summary import USERS_SHOWN, summarize

POLL = {"title": "Best &lt;b&gt;color&lt;/b&gt;? <a href=\"http://x\">http://x</a>",
        "options": ["red", "blue &amp; green"], "counts": ["?", "?"], "initiator": "owner1", "timestamp": 1}


def test_nothing_before_the_first_join() -> None:
    assert summarize(None, 0.0, live=False) is None


def test_the_card_shows_users_what_plays_playlist_and_poll() -> None:
    state = feed(ChannelState(), join_sequence(
        items=[item(1, "rtmp://x/a"), item(2, "rtmp://x/b")], current=1, poll=POLL,
        users=[user("guest1", 0, afk=True), user("owner1", 255)]), at=100.0)
    card = summarize(state, 110.0, live=True)
    assert card is not None
    json.dumps(card)  # plain data only
    assert card["users"]["count"] == 3
    assert [u["name"] for u in card["users"]["shown"]] == ["owner1", "bot", "guest1"]  # by rank
    assert card["now_playing"]["title"] == "Livestream"
    assert card["now_playing"]["position"] == 12.0  # changeMedia said 2.001 s at t=100; now t=110
    assert card["now_playing"]["seconds"] == 30
    assert card["playlist"]["length"] == 2
    assert card["poll"]["title"] == "Best <b>color</b>? http://x"  # decoded; the page escapes it
    assert [o["text"] for o in card["poll"]["options"]] == ["red", "blue & green"]
    assert [o["count"] for o in card["poll"]["options"]] == [None, None]
    # While disconnected the card shows the last replica, its position not extrapolated.
    stale = summarize(state, 500.0, live=False)
    assert stale is not None
    assert stale["now_playing"]["position"] == 2.0
    assert stale["live"] is False


def test_the_user_list_is_bounded() -> None:
    many = [user(f"u{i:03d}") for i in range(USERS_SHOWN * 3)]
    state = feed(ChannelState(), join_sequence(users=many))
    card = summarize(state, 0.0, live=True)
    assert card is not None
    assert card["users"]["count"] == USERS_SHOWN * 3 + 1
    assert len(card["users"]["shown"]) == USERS_SHOWN


def test_an_idle_channel_plays_nothing() -> None:
    state = feed(ChannelState(), join_sequence(items=[item(1, "a")], current=1))
    state = apply(state, protocol.parse("delete", {"uid": 1}))
    card = summarize(state, 0.0, live=True)
    assert card is not None
    assert card["now_playing"] is None
    assert card["playlist"]["length"] == 0
