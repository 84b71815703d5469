"""Small fakes satisfying health's source protocols."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeRoom:
    name: str = "lobby"
    state: str = "ready"
    state_since: float = 0.0
    attempt: int = 0
    last_frame_at: float | None = 0.0
    ping_interval: float | None = 25.0
    ping_timeout: float | None = 120.0
    media_playing: bool = False
    last_media_update_at: float | None = None
    flaps_in_window: int = 0
    degraded: bool = False
    kicked_reason: str | None = None
    connected_since: float | None = 0.0
    reconnects: int = 0
    outbox_depth: int = 0
