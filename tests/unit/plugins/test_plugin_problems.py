"""``daz config check`` validates plugin sections through each plugin's own settings model."""

from __future__ import annotations

from daz.plugins.host import plugin_problems


def test_valid_sections_have_no_problems() -> None:
    assert plugin_problems({"commands": {"prefix": "?"}, "chatlog": {}, "greeter": {"enabled": False}}) == []


def test_each_problem_is_one_line_naming_the_field() -> None:
    problems = plugin_problems({"commands": {"prefix": 5, "bogus": 1}, "nosuch": {}})
    assert any(p.startswith("plugins.commands.prefix:") for p in problems)
    assert any(p.startswith("plugins.commands.bogus: unknown field") for p in problems)
    assert any(p.startswith("plugins.nosuch: no such plugin") for p in problems)
    assert all("\n" not in p for p in problems)


def test_disabled_flag_must_be_boolean() -> None:
    assert plugin_problems({"greeter": {"enabled": "yes"}}) == [
        "plugins.greeter.enabled: must be true or false (got 'yes')"
    ]
