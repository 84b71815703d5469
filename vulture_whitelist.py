# Names vulture (`make lint`) cannot see being used, each with the reason. Not imported by anything.
# Keep it small: delete dead code instead of listing it here. Typer commands, pydantic validators and
# pytest fixtures need no entry (pyproject.toml [tool.vulture] recognises their decorators).
# ruff: noqa
_ = object()

# Library hooks: python-engineio / python-socketio call these overrides (daz/transport/socketio.py,
# pinned by tests/unit/transport/test_engineio_hooks.py).
_._read_loop_websocket
_._engineio_client_class
auth  # python-socketio passes (sid, environ, auth) to the fake server's connect handler

# Context-manager protocol: __exit__(self, exc_type, exc, tb) takes them whether it uses them or not.
exc_type
tb

# Records serialised whole (dataclasses.asdict / JSON for the status page and /api/*): the reader is
# the browser or an operator, not Python.
_.succeeded_per_s  # health/status.py -> static/app.js throughput chart
_.failed_per_s
_.dead_per_s

# Public API for plugins and for users of the test kit (documented in docs/plugins.md,
# docs/channel.md, docs/fake-cytube.md, docs/testing-kit.md); daz itself does not call every method.
_.move  # cytube/room_actions.py RoomActions: one method per CyTube action
_.jump
_.set_temp
_.close_poll
_.mute
_.unmute
_.assign_leader
_.stop_media_updates  # testing/fake_cytube/server.py FakeCytubeServer
_.pause
_.open_connections
_.opened_at  # testing/faults.py ConnectionStats
_.sigint  # testing/process.py DazProcess

# Public view documented in docs/rooms.md (RoomManager.capacities() -> ServerCapacity): for operators
# and cluster placement, read by callers outside the package.
_.next_token_in  # cytube/scheduler.py ServerCapacity (RoomManager.capacities()), no reader yet
_.free
