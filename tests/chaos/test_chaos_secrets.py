"""Scenario 7: no configured password or DSN password ever reaches a log line.

Every chaos test is already scanned by ``secrets_guard`` (conftest). This scenario exists to give
the secrets as many chances to leak as we can arrange in one run of the real ``daz run`` process,
at debug level, in both log formats: a room password and a channel password (logged in), a wrong
password on a second room (rejected login), the admin token, and a DSN password on a database that
goes away while daz uses it (connection errors carry DSNs) and comes back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chaos_support import (
    CHANNEL_PASSWORD,
    DB_PASSWORD,
    ROOM_PASSWORD,
    SECRETS,
    LogSources,
    find_secrets,
    until,
)

from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer
from daz.testing.pgcluster import PgCluster
from daz.testing.process import DazProcess

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.cluster]

WRONG_PASSWORD = "chaos-wrong-pw-Tb09#q"
ADMIN_TOKEN = "chaos-admin-token-Yv44$w"
STARTUP_TIMEOUT = 60.0


def _config(server: FakeCytubeServer, dsn: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "rooms": [
            {"channel": "lobby", "username": "dazbot", "password": ROOM_PASSWORD,
             "channel_password": CHANNEL_PASSWORD, "server_url": server.url},
            {"channel": "lounge", "username": "dazbot2", "password": WRONG_PASSWORD,
             "server_url": server.url},
        ],
        "cytube": {"backoff": {"base_seconds": 0.2, "max_seconds": 1.0},
                   "probe": {"enabled": False}, "connect_timeout_seconds": 3,
                   "servers": {"default": {"connection_burst": 1000}}},
        "database": {"url": dsn, "connect_timeout_seconds": 1},
        "spool": {"path": str(tmp_path / "spool.sqlite")},
        "health": {"port": 0, "external_check": False, "interval_seconds": 0.5,
                   "admin_token": ADMIN_TOKEN},
    }


@pytest.mark.parametrize("log_format", ["json", "console"])
async def test_no_secret_in_any_log_line(
    pg_cluster: PgCluster, log_files: LogSources, tmp_path: Path, log_format: str
) -> None:
    log_files.add_secret(WRONG_PASSWORD)
    log_files.add_secret(ADMIN_TOKEN)
    dsn = pg_cluster.dsn.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)  # trust auth ignores it
    async with FakeCytubeServer(
        accounts={"dazbot": ROOM_PASSWORD, "dazbot2": "the-right-one"},
        channel_passwords={"lobby": CHANNEL_PASSWORD}, limits=CytubeLimits(refill_seconds=0.05),
    ) as server:
        config_path = tmp_path / "daz.json"
        config_path.write_text(json.dumps(_config(server, dsn, tmp_path)))
        proc = DazProcess.daz_run(
            "--config", str(config_path), "--log-level", "debug", "--log-format", log_format,
            output_path=log_files.add_file(tmp_path / "daz.out"), cwd=tmp_path,
        )
        async with proc:
            await until(lambda: "dazbot" in server.sessions("lobby"),
                        timeout=STARTUP_TIMEOUT, what="the bot logged in to lobby")
            await server.say("lobby", "alice", "!help")
            mark = proc.mark()
            await pg_cluster.astop("immediate")  # connections die mid-use: errors with DSNs
            await proc.wait_for_line(r"(?i)database|postgres|sql|store", timeout=20, since=mark)
            await until(lambda: len(proc.lines(mark)) > 5, timeout=20, what="outage log lines")
            await pg_cluster.astart()
            await server.restart(down_for=0.5)
            await until(lambda: "dazbot" in server.sessions("lobby"), timeout=STARTUP_TIMEOUT,
                        what="the bot back in lobby")
        lines = proc.lines()
    assert len(lines) > 20, "the scan must see real output, or it proves nothing"
    hits = find_secrets(lines, SECRETS | {WRONG_PASSWORD, ADMIN_TOKEN})
    assert not hits, "\n".join(hits[:10])


def test_the_scan_finds_a_planted_secret() -> None:
    planted = [f"db error: could not connect to postgresql://u:{DB_PASSWORD}@h/db", "harmless"]
    hits = find_secrets(planted, SECRETS)
    assert len(hits) == 1
    assert DB_PASSWORD not in hits[0], "the failure report must not leak the secret either"
