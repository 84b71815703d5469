"""Configuration: the shipped example, env overrides, secrets from file/env, one clear line per problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daz.cli.config_cmd import example_text
from daz.config import MASK, format_problem, load_config, masked_dict, validate_config
from daz.errors import ConfigError


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "daz.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_shipped_example_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "example.json"
    path.write_text(example_text(), encoding="utf-8")
    config = load_config(path, env={})
    assert config.retry.worker_count == 3
    assert config.retry.poll_interval_seconds == 10
    assert config.retry.policy_for("sql_operation").backoff_multiplier == 1.5
    assert config.rooms[0].password_env == "DAZ_BOT_PASSWORD"
    assert config.database.backend == "sqlite"


def test_defaults_without_file() -> None:
    config = load_config(None, env={})
    assert config.database.url.get_secret_value() == "sqlite:///daz.db"
    assert config.retry.policy_for("unknown_op") == config.retry.default_policy


def test_env_overrides_nested_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, {"retry": {"worker_count": 3}})
    env = {
        "DAZ_RETRY__WORKER_COUNT": "7",
        "DAZ_RETRY__ENABLED": "false",
        "DAZ_RETRY__RETRY_POLICIES__SQL_OPERATION__MAX_DELAY_SECONDS": "90.5",
        "DAZ_HEALTH__PORT": "9999",
        "DAZ_TEST_PG_DSN": "ignored: no double underscore",
    }
    config = load_config(path, env=env)
    assert config.retry.worker_count == 7
    assert config.retry.enabled is False
    assert config.retry.policy_for("sql_operation").max_delay_seconds == 90.5
    assert config.health.port == 9999


def test_database_url_env_selects_the_store(tmp_path: Path) -> None:
    path = _write(tmp_path, {"database": {"url": "sqlite:///other.db"}})
    config = load_config(path, env={"DAZ_DATABASE_URL": "postgresql://bot:pw123@127.0.0.1/daz"})
    assert config.database.backend == "postgres"
    assert config.database.display_url() == f"postgresql://bot:{MASK}@127.0.0.1/daz"
    assert "pw123" in config.secrets()


def test_env_override_indexes_lists(tmp_path: Path) -> None:
    path = _write(tmp_path, {"rooms": [{"channel": "a"}, {"channel": "b"}]})
    config = load_config(path, env={"DAZ_ROOMS__1__PASSWORD": "12345", "DAZ_ROOMS__0__ENABLED": "false"})
    password = config.rooms[1].resolved_password()
    assert password is not None
    assert password.get_secret_value() == "12345"  # a numeric password stays a string
    assert config.rooms[0].enabled is False


def test_env_override_past_the_end_of_a_list_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, {"rooms": [{"channel": "a"}]})
    with pytest.raises(ConfigError, match="DAZ_ROOMS__3__PASSWORD: rooms has 1 entries"):
        load_config(path, env={"DAZ_ROOMS__3__PASSWORD": "x"})


def test_env_json_values_for_objects(tmp_path: Path) -> None:
    path = _write(tmp_path, {})
    config = load_config(path, env={"DAZ_PLUGINS__GREETER": '{"message": "hi"}',
                                    "DAZ_CYTUBE__GIVE_UP_AFTER_ATTEMPTS": "null"})
    assert config.plugins["greeter"] == {"message": "hi"}
    assert config.cytube.give_up_after_attempts is None


def test_password_from_file_and_env(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw.txt"
    secret_file.write_text("from-file-secret\n", encoding="utf-8")
    config = validate_config({"rooms": [
        {"channel": "a", "password_file": str(secret_file)},
        {"channel": "b", "password_env": "DAZ_TEST_ROOM_PW"},
    ]})
    first = config.rooms[0].resolved_password()
    assert first is not None
    assert first.get_secret_value() == "from-file-secret"
    with pytest.raises(ConfigError, match="DAZ_TEST_ROOM_PW is not set"):
        config.rooms[1].resolved_password()


def test_password_env_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAZ_TEST_ROOM_PW", "env-secret")
    config = validate_config({"rooms": [{"channel": "b", "password_env": "DAZ_TEST_ROOM_PW"}]})
    assert "env-secret" in config.secrets()


def test_only_one_password_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"rooms": [{"channel": "a", "password": "x", "password_env": "Y"}]})
    assert info.value.problems == ["rooms.0: give only one of password, password_file, password_env"]


def test_three_mistakes_three_lines() -> None:
    raw = {
        "rooms": [{"channel": "lobby", "password": "TopSecret-99"}],
        "retry": {
            "worker_count": -3,
            "workr_count": 2,
            "retry_policies": {"sql_operation": {"max_delay_seconds": "soon"}},
        },
    }
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert sorted(info.value.problems) == sorted([
        "retry.worker_count: must be at least 1 (got -3)",
        "retry.workr_count: unknown field; remove it or check its spelling (see docs/configuration.md)",
        'retry.retry_policies.sql_operation.max_delay_seconds: must be a number, e.g. 30 or 2.5 (got "soon")',
    ])


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"logging": {"level": "loud"}},
         "logging.level: must be one of 'debug', 'info', 'warning' or 'error' (got \"loud\")"),
        ({"health": {"port": 70000}}, "health.port: must be at most 65535 (got 70000)"),
        ({"retry": {"batch_size": 1.5}}, "retry.batch_size: must be a whole number, e.g. 3 (got 1.5)"),
        ({"retry": {"enabled": "maybe"}}, 'retry.enabled: must be true or false (got "maybe")'),
        ({"rooms": {"channel": "x"}}, "rooms: must be a JSON list [...]"),
        ({"cytube": {"message_max_chars": 0}}, "cytube.message_max_chars: must be at least 1 (got 0)"),
    ],
)
def test_problem_wording(raw: dict[str, object], line: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert info.value.problems == [line]


def test_secret_values_are_never_echoed_in_problems() -> None:
    raw = {"rooms": [{"channel": "a", "password": 424242}],
           "database": {"url": "mysql://u:dbsecret@h/db"}, "health": {"admin_token": ["tok"]}}
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    text = "\n".join(info.value.problems)
    assert "424242" not in text
    assert "dbsecret" not in text
    assert "rooms.0.password: must be a string in quotes" in text
    assert "database.url: must start with sqlite:/// or postgresql://" in text


def test_format_problem_falls_back_to_pydantic_words() -> None:
    line = format_problem({"loc": ("x", "y"), "type": "something_new", "msg": "Value error, Bad thing",
                           "input": 3})
    assert line == "x.y: bad thing (got 3)"


def test_masked_dict_hides_every_secret() -> None:
    config = validate_config({
        "rooms": [{"channel": "a", "password": "pw-one", "channel_password": "pw-two"}],
        "database": {"url": "postgresql://u:pw-three@h/db"},
        "health": {"admin_token": "pw-four"},
    })
    text = json.dumps(masked_dict(config))
    for secret in ("pw-one", "pw-two", "pw-three", "pw-four"):
        assert secret not in text
        assert secret in config.secrets()
    assert text.count(MASK) == 4


def test_bad_json_file_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"retry": {"worker_count": 3,}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON at line 1"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.json", env={})


def test_configuration_docs_are_current() -> None:
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gen_config_docs", root / "scripts" / "gen_config_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = root / "docs" / "configuration.md"
    assert module.main(["--check", str(page)]) == 0, (
        "docs/configuration.md is stale: run `python scripts/gen_config_docs.py`"
    )
    text = page.read_text(encoding="utf-8")
    assert "`DAZ_RETRY__WORKER_COUNT`" in text
    assert "| 12 | 4096 | [225.00, 300.00] |" in text


def test_a_partial_policy_is_merged_over_the_built_in_one() -> None:
    from daz.config import validate_config

    config = validate_config({"retry": {"retry_policies": {"sql_operation": {"max_delay_seconds": 90}}}})
    sql = config.retry.retry_policies["sql_operation"]
    assert (sql.max_delay_seconds, sql.backoff_multiplier, sql.breaker, sql.max_retries) == (
        90, 1.5, "database", 3)
    assert config.retry.retry_policies["cytube_command"].max_retries == 5  # the other default stays


def test_a_policy_set_from_the_environment_keeps_the_defaults() -> None:
    from daz.config import load_config

    config = load_config(None, {"DAZ_RETRY__RETRY_POLICIES__SQL_OPERATION__MAX_RETRIES": "7"})
    assert config.retry.retry_policies["sql_operation"].max_retries == 7
    assert config.retry.retry_policies["sql_operation"].breaker == "database"
    assert set(config.retry.retry_policies) == {"cytube_command", "sql_operation"}


def test_one_breaker_entry_keeps_the_default_entries() -> None:
    from daz.config import validate_config

    config = validate_config({"breakers": {"database": {"minimum_calls": 5}, "cytube": {"window_size": 12}}})
    assert sorted(config.breakers) == ["cytube", "database", "default"]
    assert config.breakers["database"].minimum_calls == 5
