"""The supervisor follows the taxonomy's decisions (FakeClock + FakeNetwork)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.cytube.conftest import harness

from daz.config import CytubeConfig, DazConfig, ProbeConfig, RoomConfig
from daz.cytube.states import RoomState
from daz.testing.fake_transport import FakeNetwork


def _config(room: RoomConfig | None = None, **cytube: Any) -> DazConfig:
    cytube.setdefault("probe", ProbeConfig(enabled=False))
    return DazConfig(
        rooms=[room or RoomConfig(channel="lobby", username="dazbot")], cytube=CytubeConfig(**cytube)
    )


async def test_wrong_password_stops_after_one_attempt_and_restart_rereads_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("wrong\n")
    network = FakeNetwork(login_error="Invalid username/password combination")
    room = RoomConfig(channel="lobby", username="dazbot", password_file=secret)
    async with harness(_config(room, login_failure_retry_seconds=600), network) as h:
        await h.until(RoomState.STOPPED)
        assert h.status.reason == "login refused: Invalid username/password combination"
        assert network.connects == 1
        await h.clock.advance(599)
        assert network.connects == 1  # no retry at speed: only the slow schedule
        await h.clock.advance(2)
        await h.until(RoomState.STOPPED)
        assert network.connects == 2
        network.login_error = None
        secret.write_text("right\n")
        h.manager.restart("lobby")
        await h.until(RoomState.READY)
        assert network.connects == 3
        stopped = h.named("room.stopped")
        assert stopped[0]["outcome"] == "bad_credentials"
        assert stopped[0]["retry_in"] == 600


async def test_a_password_file_fixed_between_attempts_earns_one_immediate_retry(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("wrong")
    network = FakeNetwork(answer_login=False)
    room = RoomConfig(channel="lobby", username="dazbot", password_file=secret)
    async with harness(_config(room, login_failure_retry_seconds=600), network) as h:
        await h.until(RoomState.JOINING)
        secret.write_text("right")  # fixed while the refused attempt was under way
        network.answer_login = True
        network.current.push(  # type: ignore[union-attr]
            "login", {"success": False, "error": "Invalid username/password combination"}
        )
        await h.until(RoomState.READY)
        assert network.transports[-1].emitted[-1] == ("login", {"name": "dazbot", "pw": "right"})
        assert h.named("room.stopped") == []


async def test_a_ban_stops_the_room_and_it_never_reconnects_by_itself() -> None:
    network = FakeNetwork()
    async with harness(_config(), network) as h:
        await h.until(RoomState.READY)
        network.current.kick("You are banned from this channel.")  # type: ignore[union-attr]
        await h.until(RoomState.STOPPED)
        connects = network.connects
        await h.clock.advance(24 * 3600)
        assert network.connects == connects
        assert h.status.reason == "banned: You are banned from this channel."
        assert h.manager.admission.capacities()[0].in_use == 0  # the slot went back


async def test_a_guest_name_clash_draws_a_new_name() -> None:
    network = FakeNetwork(login_error="That name is already in use on this channel.")
    async with harness(_config(RoomConfig(channel="lobby")), network) as h:
        await h.until(RoomState.BACKING_OFF)
        first = network.transports[0].emitted[-1][1]["name"]
        network.login_error = None
        await h.until(RoomState.READY, step=0.5)
        second = network.transports[-1].emitted[-1][1]["name"]
        assert first != second
        assert second.startswith("daz-")


async def test_guest_logins_wait_out_the_window_from_our_own_last_login() -> None:
    network = FakeNetwork()
    cytube = {"servers": {"default": {"guest_login_window_seconds": 60}}}
    async with harness(_config(RoomConfig(channel="lobby"), **cytube), network) as h:
        await h.until(RoomState.READY)
        logged_in_at = h.clock.monotonic()
        network.current.drop()  # type: ignore[union-attr]
        await h.until(RoomState.WAITING, step=0.5)
        assert h.status.reason.startswith("guest-login window:")
        connects = network.connects
        await h.clock.advance(logged_in_at + 59 - h.clock.monotonic())
        assert network.connects == connects
        await h.until(RoomState.READY, step=0.5)
        assert h.clock.monotonic() - logged_in_at <= 61


async def test_socket_cap_kick_parks_instead_of_backing_off() -> None:
    network = FakeNetwork()
    cytube = {"servers": {"default": {"socket_cap_recheck_seconds": 60}}}
    async with harness(_config(**cytube), network) as h:
        await h.until(RoomState.READY)
        network.current.kick("Too many connections from your IP address")  # type: ignore[union-attr]
        await h.until(RoomState.PARKED)
        connects = network.connects
        await h.clock.advance(59)
        assert network.connects == connects
        assert h.status.state is RoomState.PARKED
        await h.until(RoomState.READY, step=1.0)


async def test_operator_stop_and_restart() -> None:
    network = FakeNetwork()
    async with harness(_config(), network) as h:
        await h.until(RoomState.READY)
        h.manager.stop("lobby", "maintenance")
        await h.until(RoomState.STOPPED)
        assert h.status.reason == "stopped by operator: maintenance"
        connects = network.connects
        await h.clock.advance(3600)
        assert network.connects == connects
        h.manager.restart("lobby")
        await h.until(RoomState.READY)


REGISTERED = RoomConfig(channel="lobby", username="dazbot", password="pw")  # type: ignore[arg-type]


async def test_a_suspect_link_is_replaced_before_it_is_closed() -> None:
    network = FakeNetwork(ping_interval=25, ping_timeout=120)
    async with harness(_config(REGISTERED, half_open_grace_seconds=10), network) as h:
        await h.until(RoomState.READY)
        old = network.current
        assert old is not None
        old.silent = True  # black hole: no PING comes
        await h.until_seen(RoomState.BACKING_OFF, step=1.0, limit=60)
        assert h.clock.monotonic() <= 25 + 10 + 1.5
        await h.until(RoomState.READY)
        await h.settle()
        assert not old.connected
        assert h.named("room.half_open")
        assert h.status.attempt == 0


async def test_without_half_open_detection_only_the_ping_timeout_notices() -> None:
    network = FakeNetwork(ping_interval=25, ping_timeout=120)
    async with harness(_config(half_open_detection=False, liveness_margin_seconds=5), network) as h:
        await h.until(RoomState.READY)
        network.current.silent = True  # type: ignore[union-attr]
        await h.until(RoomState.BACKING_OFF, step=1.0, limit=200)
        assert h.clock.monotonic() >= 25 + 120
        assert h.named("room.half_open") == []


async def test_a_guest_with_a_configured_name_waits_for_the_server_to_drop_the_dead_socket() -> None:
    network = FakeNetwork(ping_interval=25, ping_timeout=120)
    room = RoomConfig(channel="lobby", username="dazguest")
    async with harness(_config(room, half_open_grace_seconds=10, liveness_margin_seconds=5), network) as h:
        await h.until(RoomState.READY)
        network.current.silent = True  # type: ignore[union-attr]
        await h.until(RoomState.BACKING_OFF, step=1.0, limit=60)
        assert h.status.next_delay == 25 + 120 + 5 - h.clock.monotonic()
        await h.until(RoomState.READY, step=5.0, limit=60)
        assert h.clock.monotonic() >= 150


async def test_a_drawn_guest_name_comes_back_at_once_under_a_fresh_name() -> None:
    network = FakeNetwork(ping_interval=25, ping_timeout=120)
    cytube = {"servers": {"default": {"guest_login_window_seconds": 0}}}
    async with harness(_config(RoomConfig(channel="lobby"), **cytube), network) as h:
        await h.until(RoomState.READY)
        first = network.current.username  # type: ignore[union-attr]
        network.current.silent = True  # type: ignore[union-attr]
        await h.until_seen(RoomState.BACKING_OFF, step=1.0, limit=60)
        await h.until(RoomState.READY)
        assert h.clock.monotonic() <= 25 + 10 + 1.5
        assert network.current.username != first  # type: ignore[union-attr]


async def test_a_restart_or_reconnect_request_while_parked_or_waiting_tries_again() -> None:
    network = FakeNetwork(shared_host="cytube")
    cytube = {"servers": {"default": {"max_sockets": 1, "connection_burst": 1}}}
    rooms = [RoomConfig(channel="lobby", username="dazbot", password="pw"),  # type: ignore[arg-type]
             RoomConfig(channel="other", username="dazbot", password="pw")]  # type: ignore[arg-type]
    config = DazConfig(rooms=rooms, cytube=CytubeConfig(probe=ProbeConfig(enabled=False), **cytube))
    async with harness(config, network) as h:
        await h.until(RoomState.READY)
        other = lambda: h.manager.room("other")  # noqa: E731
        assert other().state is RoomState.PARKED
        h.manager.restart("other")  # still no slot: parked again, no crash
        h.manager.reconnect("other", "health")
        await h.settle()
        assert other().state is RoomState.PARKED
        assert h.named("room.state_changed")[-1]["to"] == "parked"
        h.manager.stop("lobby")  # its slot goes to the parked room, which then waits for a token
        await h.settle()
        assert other().state is RoomState.WAITING
        h.manager.reconnect("other", "health")
        await h.settle()
        assert other().state is RoomState.WAITING
        await h.clock.advance(11)
        await h.settle()
        assert other().state is RoomState.READY
