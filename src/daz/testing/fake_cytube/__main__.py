"""``python -m daz.testing.fake_cytube``: run the fake CyTube server by hand."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from daz.testing.fake_cytube.limits import CytubeLimits
from daz.testing.fake_cytube.playlist import PlaybackTiming
from daz.testing.fake_cytube.server import FakeCytubeServer


async def _serve(args: argparse.Namespace) -> None:
    limits = (
        CytubeLimits.off()
        if args.no_limits
        else CytubeLimits(
            bucket_size=args.connection_bucket,
            refill_seconds=args.connection_refill,
            max_sockets_per_ip=args.max_sockets,
            guest_login_window_seconds=args.guest_window,
        )
    )
    server = FakeCytubeServer(
        host=args.host,
        port=args.port,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        limits=limits,
        playback=PlaybackTiming(tick_seconds=args.media_interval / 5),
        registered_channels=args.registered,
    )
    async with server:
        print(f"fake CyTube listening on {server.url}", flush=True)  # noqa: T201 - CLI output
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m daz.testing.fake_cytube", description="A fake CyTube server on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ping-interval", type=float, default=25.0)
    parser.add_argument("--ping-timeout", type=float, default=120.0)
    parser.add_argument("--guest-window", type=float, default=60.0, help="guest login window per IP (s)")
    parser.add_argument("--connection-bucket", type=int, default=5, help="connection token bucket per IP")
    parser.add_argument("--connection-refill", type=float, default=10.0, help="seconds per bucket token")
    parser.add_argument("--max-sockets", type=int, default=10, help="concurrent sockets per IP")
    parser.add_argument("--no-limits", action="store_true", help="switch every CyTube limit off")
    parser.add_argument("--media-interval", type=float, default=5.0, help="seconds between mediaUpdate")
    parser.add_argument("--registered", action="append", default=[], help="a registered channel (repeat)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
