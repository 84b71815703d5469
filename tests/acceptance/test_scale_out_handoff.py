"""Scale-out hand-off: lines sent on an instance that does not hold the room reach the room's holder
at once and are delivered exactly once, in order per sender, also across a kill -9 of a holder.

Three `daz run` processes and six rooms; a plugin on every instance streams lines to the rooms that
instance does NOT hold. The fake CyTube server (chat limits on: burst 20, then 10/s per user) is the
judge of what arrived; the latency of each line is the server's receipt time minus the moment the
plugin called ``send_chat`` (same machine, same clock). Figures are printed, not asserted.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest
from scale_out_kit import (
    ACCOUNT,
    ROOMS,
    accepted,
    cluster_of_three,
    failover_seconds,
    install_streamer,
    leases,
    order,
    wait_balanced,
    wait_until,
)

from daz.testing.fake_cytube import FakeCytubeServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NAMES = ("a", "b", "c")
STREAM_INTERVAL_SECONDS = 0.3  # two senders per room: ~6.7 lines/s per room, under CyTube's 10/s


def plan_streams(owners: dict[str, str | None], total: int, tag: str,
                 senders: tuple[str, ...] = NAMES) -> dict[str, list[dict[str, object]]]:
    """Every sender streams to every room it does not hold; ``total`` lines over all streams."""
    pairs = [(name, room) for name in senders for room in ROOMS if owners.get(room) != name]
    jobs: dict[str, list[dict[str, object]]] = {name: [] for name in senders}
    for i, (name, room) in enumerate(pairs):
        count = total // len(pairs) + (1 if i < total % len(pairs) else 0)
        jobs[name].append({"room": room, "count": count, "interval": STREAM_INTERVAL_SECONDS,
                           "tag": f"{tag}-{name}-{room}"})
    return jobs


def delivered(server: FakeCytubeServer, prefix: str) -> dict[str, list[tuple[str, int]]]:
    """room -> (text, server ms) of the bot's lines whose text starts with ``prefix``, in server order."""
    return {room: [(c.text, c.time_ms) for c in server.chat_log(room)
                   if c.username == ACCOUNT and c.text.startswith(prefix)] for room in ROOMS}


def check_exactly_once_in_order(got: dict[str, list[tuple[str, int]]]) -> None:
    for room, lines in got.items():
        counts = Counter(text for text, _ in lines)
        assert all(n == 1 for n in counts.values()), (room, [t for t, n in counts.items() if n > 1])
        by_sender: dict[str, list[int]] = {}
        for text, _ in lines:
            stream, seq, _sent = text.split(" ")
            by_sender.setdefault(stream, []).append(int(seq))
        for stream, seqs in by_sender.items():
            assert seqs == sorted(seqs), f"{stream} out of order in {room}: {seqs}"


def latencies(got: dict[str, list[tuple[str, int]]]) -> list[float]:
    return [time_ms / 1000 - float(text.split(" ")[2]) for lines in got.values() for text, time_ms in lines]


def report(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return (f"{label}: {len(values)} lines, p50 {statistics.median(ordered) * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")


def all_texts(found: dict[str, list[str]], prefix: str) -> set[tuple[str, str]]:
    return {(room, text) for room, texts in found.items() for text in texts if text.startswith(prefix)}


def delivered_texts(got: dict[str, list[tuple[str, int]]]) -> set[tuple[str, str]]:
    return {(room, text) for room, lines in got.items() for text, _ in lines}


def arrived(server: FakeCytubeServer, tmp: Path, prefix: str) -> bool:
    return delivered_texts(delivered(server, prefix)) >= all_texts(accepted(tmp), prefix)


async def test_lines_from_non_owners_are_delivered_once_fast_and_survive_a_holder_kill(
    tmp_path: Path, pg_dsn: str
) -> None:
    plugins = install_streamer(tmp_path)
    async with cluster_of_three(tmp_path, pg_dsn, plugins=plugins) as (server, procs, _sampler):
        await wait_balanced(pg_dsn)

        # 1. 1,000 lines, each sent by an instance that does not hold the room.
        owners = await leases(pg_dsn)
        for name, jobs in plan_streams(owners, 1000, "h").items():
            order(tmp_path, name, 1, jobs)
        await wait_until(lambda: len(all_texts(accepted(tmp_path), "h-")) == 1000, 90, "1000 lines accepted")
        await wait_until(lambda: arrived(server, tmp_path, "h-"), 30, "1000 lines delivered")
        await asyncio.sleep(1)  # a late duplicate would show up here
        got = delivered(server, "h-")
        check_exactly_once_in_order(got)
        assert delivered_texts(got) == all_texts(accepted(tmp_path), "h-")
        print("\n" + report("hand-off, no failure", latencies(got)))

        # 2. The same streams, and a kill -9 of one holder in the middle.
        owners = await leases(pg_dsn)
        for name, jobs in plan_streams(owners, 300, "k").items():
            order(tmp_path, name, 2, jobs)
        await asyncio.sleep(4)
        victim_rooms = sorted(r for r, o in (await leases(pg_dsn)).items() if o == "b")
        await procs["b"].kill()
        killed_at = time.monotonic()
        back = await failover_seconds(server, victim_rooms, killed_at, 20)
        survivors_total = sum(int(str(j["count"])) for n in ("a", "c")
                              for j in plan_streams(owners, 300, "k")[n])

        def survivors_accepted() -> int:
            return len({t for t in all_texts(accepted(tmp_path), "k-") if not t[1].startswith("k-b-")})

        await wait_until(lambda: survivors_accepted() == survivors_total, 60, "survivors' lines accepted")
        await wait_until(lambda: arrived(server, tmp_path, "k-"), 30, "every accepted line delivered")
        await asyncio.sleep(1)
        got = delivered(server, "k-")
        check_exactly_once_in_order(got)
        extra = delivered_texts(got) - all_texts(accepted(tmp_path), "k-")
        # Only the killed sender can have a line on the server that it had not logged as accepted yet.
        assert all(text.startswith("k-b-") for _, text in extra), extra
        print(report("hand-off across a kill -9 of a holder", latencies(got))
              + f"; the victim's rooms {victim_rooms} READY elsewhere {back:.2f} s after the kill")
