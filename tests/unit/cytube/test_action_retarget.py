"""uid-targeted actions across a playlist reload: CyTube renumbers every uid from 0 when it loads a
channel's saved playlist (measured on CyTube 3.86: a restart, or a registered channel reloaded after
its last user left), so an action is re-pointed at the media it was meant for before it is sent."""

from __future__ import annotations

from daz.cytube import channel_wire as cw
from daz.cytube.action_rules import Plan, bind_items, decide_send, retarget
from daz.cytube.actions import DeleteMedia, JumpTo, MoveMedia, SetTemp, Skip, action_from_record, to_record
from daz.cytube.channel import ChannelState, apply_all
from daz.cytube.protocol import LoginResult, Rank, UserJoined, UserList

BOT = "DazBot"
PERMS = {"playlistdelete": 2, "playlistmove": 1.5, "playlistjump": 1.5, "settemp": 2}


def replica(uids_and_ids: list[tuple[int, str]], current: int | None = None) -> ChannelState:
    items = tuple(cw.PlaylistItem(uid, cw.Media(mid, "rt", mid, 30), True, BOT) for uid, mid in uids_and_ids)
    events: list[object] = [
        LoginResult(True, BOT, False, None), Rank(2), cw.PermissionsSet(tuple(PERMS.items())),
        cw.PlaylistLocked(True), cw.PlaylistReplaced(items), UserList((UserJoined(BOT, 2),)),
    ]
    if current is not None:
        events.append(cw.CurrentSet(current))
    return apply_all(ChannelState(), events)


BEFORE = replica([(1, "b"), (2, "c"), (3, "d")], current=1)  # a was uid 0 and was deleted
AFTER_RELOAD = replica([(0, "b"), (1, "c"), (2, "d")], current=0)  # the same items, renumbered


def test_a_delete_in_doubt_across_a_reload_deletes_the_item_it_was_meant_for() -> None:
    action = bind_items(DeleteMedia(2), BEFORE)
    assert action == DeleteMedia(2, item="rt:c")
    # Without the recorded media, uid 2 now names "d": the replica would say "not done" and the
    # re-send would delete d.
    decision = decide_send(action, AFTER_RELOAD, in_doubt=True)
    assert decision.plan is Plan.SEND
    assert decision.action == DeleteMedia(1, item="rt:c")
    assert decide_send(DeleteMedia(2), AFTER_RELOAD, in_doubt=True).action == DeleteMedia(2)  # the old way


def test_each_uid_action_is_repointed_and_move_after_too() -> None:
    for asked, sent in [
        (JumpTo(2), JumpTo(1, item="rt:c")),
        (SetTemp(2, False), SetTemp(1, False, item="rt:c")),
        (MoveMedia(3, 1), MoveMedia(2, 0, item="rt:d", after_item="rt:b")),
        (MoveMedia(3, "prepend"), MoveMedia(2, "prepend", item="rt:d")),
    ]:
        assert retarget(bind_items(asked, BEFORE), AFTER_RELOAD) == sent


def test_media_gone_after_the_reload() -> None:
    gone = replica([(0, "b"), (1, "d"), (2, "e")], current=0)  # c was removed while we were away
    delete = decide_send(bind_items(DeleteMedia(2), BEFORE), gone, in_doubt=True)
    assert (delete.plan, delete.action) == (Plan.DONE, None)  # not uid 2 ("e")
    skip = decide_send(bind_items(Skip(2), BEFORE), gone, in_doubt=False)
    assert skip.plan is Plan.DONE
    jump = decide_send(bind_items(JumpTo(2), BEFORE), gone, in_doubt=False)
    assert jump.plan is Plan.FAIL
    assert "rt:c (uid 2 when asked) is no longer on the playlist" in jump.reason


def test_unchanged_uids_and_unbound_actions_are_sent_as_they_are() -> None:
    action = bind_items(DeleteMedia(2), BEFORE)
    assert decide_send(action, BEFORE, in_doubt=False).action is action
    assert retarget(DeleteMedia(2), AFTER_RELOAD) == DeleteMedia(2)


def test_the_recorded_media_survives_the_journal() -> None:
    action = bind_items(MoveMedia(3, 1), BEFORE)
    assert action_from_record(to_record(action)) == action
    assert action_from_record({"kind": "delete", "uid": 2}) == DeleteMedia(2)  # records from before
