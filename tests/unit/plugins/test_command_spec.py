"""The command framework's pure core: specs, argument parsing, cooldowns, the rank gate, the registry."""

from __future__ import annotations

import pytest

from daz.plugins.command_spec import (
    Arg,
    Command,
    CommandConflict,
    CommandRegistry,
    Cooldowns,
    UsageError,
    Verdict,
    decide,
    help_text,
    parse_arguments,
    split_command,
)


def _noop(_: object) -> None:
    return None


ADD = Command("add", _noop, "queue a video", args=(Arg("type", choices=("yt", "rt")), Arg("id"),
                                                   Arg("title", optional=True, rest=True)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("!status", ("status", "")), ("  !Help me now ", ("help", "me now")), ("!", None),
     ("status", None), ("!!x", None), ("!é", None), ("?uptime", None)],
)
def test_split_command(text: str, expected: tuple[str, str] | None) -> None:
    assert split_command(text, "!") == expected


def test_arguments_bind_with_choices_optional_and_rest() -> None:
    assert parse_arguments(ADD, "YT abc My  great video", "!") == {
        "type": "yt", "id": "abc", "title": "My great video"}
    assert parse_arguments(ADD, "rt x", "!") == {"type": "rt", "id": "x", "title": None}


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "missing type"), ("yt", "missing id"), ("zz abc", "type must be one of yt, rt")],
)
def test_usage_errors_name_the_usage_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_arguments(ADD, text, "!")
    assert str(info.value) == f"usage: !add <yt|rt> <id> [title...] ({problem})"
    assert info.value.retryable is False


def test_typed_arguments() -> None:
    cmd = Command("vote", _noop, "", args=(Arg("option", kind="int"), Arg("weight", kind="float",
                                                                         optional=True)))
    assert parse_arguments(cmd, "2 0.5", "$") == {"option": 2, "weight": 0.5}
    for bad, problem in (("two", "option must be a whole number, not 'two'"),
                         ("1 nan", "weight must be a finite number"), ("1 2 3", "unexpected '3'")):
        with pytest.raises(UsageError, match=problem):
            parse_arguments(cmd, bad, "$")
    user = Command("kick", _noop, "", args=(Arg("name", kind="user"),))
    with pytest.raises(UsageError, match="name must be a user name"):
        parse_arguments(user, "a<b", "!")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"name": "Bad"}, "command name 'Bad'"), ({"name": "x", "aliases": ("9x",)}, "command name '9x'"),
     ({"name": "x", "user_cooldown": -1}, "cooldowns"),
     ({"name": "x", "args": (Arg("a", rest=True), Arg("b"))}, "only the last argument"),
     ({"name": "x", "args": (Arg("a", optional=True), Arg("b"))}, "follows an optional one")],
)
def test_bad_specs_are_refused_at_registration(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Command(handler=_noop, help="", **kwargs)  # type: ignore[arg-type]


def test_cooldowns_per_user_and_per_room() -> None:
    cmd = Command("skip", _noop, "", user_cooldown=10, room_cooldown=3)
    cds = Cooldowns()
    assert cds.remaining(cmd, "lobby", "alice", 0) == 0
    cds.start(cmd, "lobby", "alice", 0)
    assert cds.remaining(cmd, "lobby", "ALICE", 1) == 9  # names are case-insensitive
    assert cds.remaining(cmd, "lobby", "bob", 1) == 2  # the room cooldown holds everyone back
    assert cds.remaining(cmd, "lobby", "bob", 3) == 0
    assert cds.remaining(cmd, "other", "alice", 1) == 0  # rooms are independent
    other = Command("add", _noop, "", user_cooldown=10)
    assert cds.remaining(other, "lobby", "alice", 1) == 0  # commands are independent
    assert cds.remaining(cmd, "lobby", "alice", 10) == 0


def test_rank_gate_comes_before_the_cooldown() -> None:
    cmd = Command("skip", _noop, "", min_rank=2, user_cooldown=5)
    cds = Cooldowns()
    assert decide(cmd, 1, cds, room="r", user="u", now=0).verdict is Verdict.RANK_TOO_LOW
    assert decide(cmd, 2, cds, room="r", user="u", now=0).verdict is Verdict.RUN
    cds.start(cmd, "r", "u", 0)
    assert decide(cmd, 1, cds, room="r", user="u", now=1).verdict is Verdict.RANK_TOO_LOW
    cooling = decide(cmd, 3, cds, room="r", user="u", now=1)
    assert (cooling.verdict, cooling.wait_seconds) == (Verdict.COOLING_DOWN, 4)


def test_registry_lists_what_a_rank_may_use_and_refuses_conflicts() -> None:
    reg = CommandRegistry()
    reg.add(Command("help", _noop, "list", aliases=("commands",)), "!", "commands")
    reg.add(Command("skip", _noop, "skip it", min_rank=2), "!", "dj")
    reg.add(ADD, "!", "dj")
    reg.add(Command("help", _noop, "other help"), "$", "other")  # another prefix: no clash
    assert reg.lookup("!", "commands") is not None
    names = [(e.prefix, e.command.name) for e in reg.usable_by(1)]
    assert names == [("!", "add"), ("!", "help"), ("$", "help")]
    assert ("!", "skip") in [(e.prefix, e.command.name) for e in reg.usable_by(2)]
    with pytest.raises(CommandConflict, match=r"command !commands is already registered by plugin commands"):
        reg.add(Command("other", _noop, "", aliases=("commands",)), "!", "x")
    reg.remove_owner("dj")
    assert reg.lookup("!", "skip") is None
    assert help_text(reg.usable_by(0)) == "commands: !help (list), $help (other help)"
    assert help_text([]) == "commands: none"
