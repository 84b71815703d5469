"""Scenario 6: malformed input never crashes the protocol layer or the config loader.

Two engines: a seeded random generator (fast, runs ``DAZ_CHAOS_FUZZ_CASES`` cases, 10^5 by default
and 10^6 in the long run) that mutates valid CyTube payloads, Socket.IO frames and config files;
and hypothesis (structure-aware, shrinking) with a smaller example count. The seed is printed on
failure; ``DAZ_CHAOS_SEED`` replays a run.

Guarantees checked:
- ``protocol.parse`` never raises; it returns a typed event or ``Malformed`` (the session turns the
  latter into a ``protocol.malformed`` bus event); ``Malformed`` is bounded (event name, detail);
- Socket.IO text frames: either the library's decoder rejects the frame (the client drops it) or the
  decoded event goes through ``parse`` as above;
- the config loader raises ``ConfigError`` and nothing else, for any file text, any structure and
  any ``DAZ_*`` environment; its messages never echo a configured password.
"""

from __future__ import annotations

import copy
import json
import os
import random
import string
import time
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daz.config import DazConfig, load_config, validate_config
from daz.cytube import ban_wire, channel_wire, protocol
from daz.errors import ConfigError

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

FUZZ_CASES = int(os.environ.get("DAZ_CHAOS_FUZZ_CASES", "100000"))
HYPOTHESIS_EXAMPLES = int(os.environ.get("DAZ_CHAOS_HYPOTHESIS_EXAMPLES", "1000"))
SEED = int(os.environ.get("DAZ_CHAOS_SEED", str(time.time_ns() % 2**32)))
# Config validation is ~100x slower than a protocol parse; it gets this share of the cases.
CONFIG_SHARE = 0.1
ROOM_PASSWORD = "fuzz-room-Pw-7Qx!"
DB_PASSWORD = "fuzz-db-Pw-3Kz?"

PROTOCOL_TYPES = (
    protocol.ChatMessage, protocol.PrivateMessage, protocol.UserJoined, protocol.UserLeft,
    protocol.UserList, protocol.UserCount, protocol.MediaChanged, protocol.MediaUpdate,
    protocol.KickNotice, protocol.LoginResult, protocol.Cooldown, protocol.Rank,
    protocol.ErrorMessage, protocol.NeedPassword, protocol.PasswordAccepted, protocol.GenericEvent,
    protocol.Malformed, *typing.get_args(channel_wire.ChannelEvent), ban_wire.Banlist, ban_wire.BanRemoved,
)

VALID_PAYLOADS: dict[str, Any] = {
    "chatMsg": {"username": "alice", "msg": "hi &amp; <a href=\"x\">link</a>", "meta": {}, "time": 1},
    "pm": {"username": "alice", "to": "bot", "msg": "psst", "meta": {}, "time": 2},
    "addUser": {"name": "bob", "rank": 1, "meta": {"afk": False, "muted": False}, "profile": {}},
    "userLeave": {"name": "bob"},
    "userlist": [{"name": "a", "rank": 0, "meta": {}}, {"name": "b", "rank": 2, "meta": {"afk": True}}],
    "usercount": 3,
    "changeMedia": {"id": "abc", "type": "yt", "title": "t", "seconds": 100, "currentTime": 0,
                    "paused": False},
    "mediaUpdate": {"currentTime": 12.5, "paused": False},
    "kick": {"reason": "bye"},
    "login": {"success": True, "name": "bot", "guest": False},
    "cooldown": 1000,
    "rank": 1,
    "errorMsg": {"msg": "no"},
    "needPassword": True,
    "cancelNeedPassword": None,
    "channelOpts": {"password": ROOM_PASSWORD, "allow_voteskip": True},
    "setMotd": "<b>hello</b>",
    "banlist": [{"id": 1, "ip": "203.0.113.7", "name": "troll", "reason": "spam", "bannedby": "mod"}],
    "banlistRemove": {"id": 1, "name": "troll"},
}
EVENT_NAMES = [*VALID_PAYLOADS, *sorted(protocol.KNOWN_EVENTS), "", "x" * 500, "__proto__", "chatmsg"]
EVENT_NAMES += list(VALID_PAYLOADS) * 2  # weight the modelled events: they hold the parsing logic


# -- random generators --------------------------------------------------------------------------

def _rand_str(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.01:  # oversize strings are costly to build and encode: rare but present
        return "y" * rng.choice([320, 321, 10_000, 10_001, 200_000])
    if roll < 0.1:
        return ""
    if roll < 0.3:
        return "".join(rng.choices(string.printable, k=rng.randrange(1, 40)))
    if roll < 0.4:
        return "".join(chr(rng.randrange(0, 0x110000)) for _ in range(rng.randrange(1, 12))).encode(
            "utf-8", "surrogatepass"
        ).decode("utf-8", "replace")
    if roll < 0.6:
        return rng.choice(["<a href='", "&amp", "&#x110000;", "\x00", "\u202e", "<" * 50, "🙂" * 5])
    return rng.choice(EVENT_NAMES)


_SCALARS = (
    None, True, False, 0, -1, 1, 2**63, -(2**70), 1e308, -1e308, float("inf"), float("-inf"),
    float("nan"), 0.5,
)


def _rand_scalar(rng: random.Random) -> Any:
    return rng.choice(_SCALARS) if rng.random() < 0.5 else _rand_str(rng)


def _rand_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth >= 4 or roll < 0.5:
        return _rand_scalar(rng)
    if roll < 0.75:
        return [_rand_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return {_rand_str(rng): _rand_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def _mutate(value: Any, rng: random.Random, depth: int = 0) -> Any:
    """A near-miss of a valid value: one key removed, retyped, or replaced, possibly nested."""
    if isinstance(value, dict) and value and depth < 3:
        out = dict(value)
        key = rng.choice(list(out))
        action = rng.randrange(5)
        if action == 0:
            del out[key]
        elif action == 1:
            out[key] = _rand_value(rng)
        elif action == 2:
            out[key] = _mutate(out[key], rng, depth + 1)
        elif action == 3:
            out[_rand_str(rng)] = _rand_value(rng)
        else:
            return _rand_value(rng)
        return out
    if isinstance(value, list) and value and depth < 3:
        out_list = list(value)
        index = rng.randrange(len(out_list))
        out_list[index] = _mutate(out_list[index], rng, depth + 1)
        if rng.random() < 0.2:
            out_list = out_list * (3000 if rng.random() < 0.05 else 2)
        return out_list
    return _rand_value(rng)


def _payload_case(rng: random.Random) -> tuple[str, Any]:
    name = rng.choice(EVENT_NAMES) if rng.random() < 0.9 else _rand_str(rng)
    base = VALID_PAYLOADS.get(name)
    roll = rng.random()
    if base is not None and roll < 0.15:
        return name, copy.deepcopy(base)
    if base is not None and roll < 0.8:
        return name, _mutate(base, rng)
    return name, _rand_value(rng)


def _frame_case(rng: random.Random) -> str:
    name, data = _payload_case(rng)
    try:
        frame = "42" + json.dumps([name, data], allow_nan=True)
    except (TypeError, ValueError):
        frame = "42[]"
    action = rng.randrange(6)
    if action == 0 and frame:
        frame = frame[: rng.randrange(len(frame))]
    elif action == 1:
        pos = rng.randrange(len(frame) + 1)
        frame = frame[:pos] + rng.choice(['"', "]", "[", "{", ",", "\\", "\x00", "-", "/"]) + frame[pos:]
    elif action == 2:
        prefixes = ["", "4", "42", "43", "45-", "451-[", "42/", "42/chat,", "2", "6", "99999"]
        frame = rng.choice(prefixes) + frame[2:]
    elif action == 3:
        frame = "42" + str(rng.randrange(10**6)) + frame[2:]
    return frame


# -- the properties -----------------------------------------------------------------------------

def _check_parsed(name: str, data: Any, outcomes: Counter[str]) -> None:
    try:
        event = protocol.parse(name, data)
    except Exception as exc:  # the property under test: this must never happen
        raise AssertionError(f"parse({name!r:.80}, {data!r:.200}) raised {exc!r}") from exc
    assert isinstance(event, PROTOCOL_TYPES), f"parse returned {type(event)}"
    if isinstance(event, protocol.Malformed):
        assert len(event.event) <= protocol.MAX_NAME_CHARS
        assert len(event.detail) <= 200
        assert event.size >= 0
    if isinstance(event, channel_wire.ChannelOptions):
        assert "password" not in dict(event.options), "channelOpts.password must not reach plugins"
    if isinstance(event, protocol.ChatMessage):
        assert len(event.raw) <= protocol.MAX_TEXT_CHARS
    outcomes[type(event).__name__] += 1


def _check_frame(frame: str, outcomes: Counter[str]) -> None:
    from socketio import packet as sio_packet

    try:
        packet = sio_packet.Packet(encoded_packet=frame)
    except (ValueError, TypeError, IndexError, RecursionError):
        # python-socketio's decoder rejects it; its client drops the frame. Not daz's layer.
        outcomes["frame_rejected"] += 1
        return
    data = packet.data
    if packet.packet_type != sio_packet.EVENT or not isinstance(data, list) or not data or not isinstance(
        data[0], str
    ):
        outcomes["frame_not_event"] += 1
        return
    _check_parsed(data[0], data[1] if len(data) > 1 else None, outcomes)


def test_protocol_random_payloads_and_frames() -> None:
    rng = random.Random(SEED)
    cases = int(FUZZ_CASES * (1 - CONFIG_SHARE))
    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    for i in range(cases):
        if i % 3 == 0:
            _check_frame(_frame_case(rng), outcomes)
        else:
            _check_parsed(*_payload_case(rng), outcomes)
    elapsed = time.monotonic() - started
    print(f"protocol fuzz: {cases} cases in {elapsed:.1f}s seed={SEED} outcomes={dict(outcomes)}")
    assert sum(outcomes.values()) == cases
    # The fuzzer must reach both sides of the parser, or it proves nothing.
    assert outcomes["Malformed"] > cases // 20, outcomes
    assert outcomes["ChatMessage"] > 0
    assert outcomes["frame_rejected"] > 0


def _base_config() -> dict[str, Any]:
    return {
        "rooms": [{"channel": "fuzz", "username": "bot", "password": ROOM_PASSWORD}],
        "database": {"url": f"postgresql://daz:{DB_PASSWORD}@127.0.0.1:5432/daz"},
        "retry": {"poll_interval_seconds": 10, "worker_count": 3,
                  "retry_policies": {"sql_operation": {"max_retries": 3, "initial_delay_seconds": 2}}},
        "health": {"port": 8080},
    }


def _assert_no_secret(exc: ConfigError) -> None:
    text = "\n".join([str(exc), *exc.problems])
    for secret in (ROOM_PASSWORD, DB_PASSWORD):
        assert secret not in text, f"ConfigError echoes a secret: {text[:300]}"


def _validate(raw: Any, outcomes: Counter[str]) -> None:
    try:
        config = validate_config(raw)
    except ConfigError as exc:
        _assert_no_secret(exc)
        outcomes["config_error"] += 1
        return
    assert isinstance(config, DazConfig)
    outcomes["config_ok"] += 1


def _config_text_case(rng: random.Random) -> str:
    text = json.dumps(_mutate(_base_config(), rng) if rng.random() < 0.7 else _base_config())
    action = rng.randrange(5)
    if action == 0:
        return text[: rng.randrange(len(text) + 1)]
    if action == 1:
        pos = rng.randrange(len(text) + 1)
        return text[:pos] + rng.choice(["{", "}", '"', ",", "\ufeff", "\x00", "NaN", "//"]) + text[pos:]
    if action == 2:
        return rng.choice(["", "null", "[]", "1", '"x"', "{" * 5000, "[" * 100_000, "\ufeff{}"])
    return text


def test_config_loader_only_raises_config_error(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    cases = max(1, int(FUZZ_CASES * CONFIG_SHARE))
    outcomes: Counter[str] = Counter()
    path = tmp_path / "config.json"
    started = time.monotonic()
    for i in range(cases):
        kind = i % 4
        if kind == 0:  # structure: near-misses of a valid config
            _validate(_mutate(_base_config(), rng), outcomes)
        elif kind == 1:  # file text: broken JSON, odd encodings
            text = _config_text_case(rng)
            if rng.random() < 0.1:
                path.write_bytes(text.encode("utf-8", "surrogatepass")[:-1] + b"\xff\xfe")
            else:
                path.write_text(text, encoding="utf-8", errors="surrogatepass")
            try:
                load_config(path, env={})
                outcomes["config_ok"] += 1
            except ConfigError as exc:
                _assert_no_secret(exc)
                outcomes["config_error"] += 1
        elif kind == 2:  # environment overrides on top of a valid file
            path.write_text(json.dumps(_base_config()))
            env_key = "DAZ_" + "__".join(
                rng.choice(["ROOMS", "0", "9", "RETRY", "WORKER_COUNT", "DATABASE", "URL", "HEALTH",
                            "PORT", "PASSWORD", _rand_str(rng).upper()])
                for _ in range(rng.randrange(1, 4))
            )
            value = rng.choice(["5", "-1", "null", "{", "[1,2]", '{"a": 1}', "true", _rand_str(rng)])
            env = {env_key.replace("\x00", ""): value.replace("\x00", "")}
            try:
                load_config(path, env=env)
                outcomes["config_ok"] += 1
            except ConfigError as exc:
                _assert_no_secret(exc)
                outcomes["config_error"] += 1
        else:  # anything at all
            _validate(_rand_value(rng), outcomes)
    elapsed = time.monotonic() - started
    print(f"config fuzz: {cases} cases in {elapsed:.1f}s seed={SEED + 1} outcomes={dict(outcomes)}")
    assert outcomes["config_error"] > cases // 4, outcomes
    assert outcomes["config_ok"] > 0, outcomes


# -- hypothesis: structure-aware, with shrinking ------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
FUZZ_SETTINGS = settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ_SETTINGS
@given(name=st.sampled_from(EVENT_NAMES) | st.text(max_size=80), data=JSON)
def test_protocol_parse_hypothesis(name: str, data: Any) -> None:
    _check_parsed(name, data, Counter())


@FUZZ_SETTINGS
@given(
    data=st.fixed_dictionaries(
        {k: st.one_of(st.just(v), JSON) for k, v in VALID_PAYLOADS["chatMsg"].items()}
    )
)
def test_chat_payload_near_misses_hypothesis(data: dict[str, Any]) -> None:
    outcomes: Counter[str] = Counter()
    _check_parsed("chatMsg", data, outcomes)
    valid = VALID_PAYLOADS["chatMsg"]
    same = all(type(data[k]) is type(valid[k]) and data[k] == valid[k] for k in ("username", "msg", "time"))
    if same and isinstance(data["meta"], dict):
        assert outcomes["ChatMessage"] == 1, "a chat line with the right shape must parse"


@settings(FUZZ_SETTINGS, max_examples=max(1, HYPOTHESIS_EXAMPLES // 5))  # pydantic is the slow part
@given(raw=st.dictionaries(st.sampled_from(sorted(DazConfig.model_fields)), JSON, max_size=6))
def test_config_sections_hypothesis(raw: dict[str, Any]) -> None:
    _validate(raw, Counter())
