"""Media items and how the fake resolves a ``queue`` request (what an offline CyTube 3.86 does).

The real server looks media up on the internet; the fake has a catalog instead
(``FakeCytubeServer(media=...)`` / ``add_media``). Types the real offline server resolves without the
internet behave as measured: ``rt`` (any id; ``duration`` makes it timed), ``hl`` (https only),
``cu`` (an iframe), ``fi`` (refused). Anything else must be in the catalog; a known type that is not
gets the offline server's refusal; an unknown type gets "Unknown media type".
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daz.testing.fake_cytube.names import sanitize_text

LIVE_TYPES = frozenset({"li", "tw", "rt", "cu", "hl"})
KNOWN_TYPES = frozenset(
    {
        "yt",
        "vi",
        "dm",
        "sc",
        "li",
        "tw",
        "tc",
        "rt",
        "cu",
        "hl",
        "fi",
        "cm",
        "gd",
        "sb",
        "bc",
        "od",
        "yp",
        "bn",
    }
)
TITLE_LIMIT = 100
NO_API_KEY = (
    "The YouTube API now requires an API key.  Please see the documentation for youtube-v3-key in "
    "config.template.yaml"
)
HLS_HTTPS = (
    "HLS links must start with HTTPS due to browser security policy.  See https://git.io/vpDLK for details."
)
RAW_FILES_OFF = "Raw file playback is not enabled on this server"
INVALID_EMBED = "Invalid embed.  Input must be an <iframe> tag"
MANIFEST_404 = "Expected HTTP 200 OK, not 404 Not Found"
INVALID_ID = "Invalid ID"
SOUNDCLOUD_GONE = (
    "Soundcloud is not supported anymore due to requiring OAuth but not accepting new API key registrations."
)
_TWITCH_CHANNEL = re.compile(r"[\w-]+", re.ASCII)  # JavaScript's \w is ASCII
_LIVESTREAM_ID = re.compile(r"^\d+;\d+$")
_IFRAME_SRC = re.compile(
    r"""^\s*<iframe\b[^>]*\bsrc\s*=\s*["']([^"']+)["'][^>]*>\s*(</iframe>)?\s*$""", re.IGNORECASE
)


def format_time(seconds: float) -> str:
    """CyTube's formatTime: ``MM:SS`` below an hour, ``HH:MM:SS`` above."""
    sec = int(seconds)
    hours, sec = divmod(sec, 3600)
    minutes, sec = divmod(sec, 60)
    if hours:
        return f"{hours:02d}:{minutes:02d}:{sec:02d}"
    return f"{minutes:02d}:{sec:02d}"


@dataclass(slots=True)
class Media:
    id: str
    title: str
    seconds: float
    type: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.title) > TITLE_LIMIT:
            self.title = self.title[:97] + "..."

    @property
    def live(self) -> bool:
        """No clock: the server never sends ``mediaUpdate`` for it and it never ends by itself."""
        return self.seconds <= 0

    @property
    def duration(self) -> str:
        return format_time(self.seconds) if self.seconds > 0 else "--:--"

    def pack(self) -> dict[str, Any]:
        seconds: float = int(self.seconds) if float(self.seconds).is_integer() else self.seconds
        return {
            "id": self.id,
            "title": self.title,
            "seconds": seconds,
            "duration": self.duration,
            "type": self.type,
            "meta": dict(self.meta),
        }


@dataclass(slots=True)
class Item:
    media: Media
    uid: int
    temp: bool
    queueby: str

    def pack(self) -> dict[str, Any]:
        return {"media": self.media.pack(), "uid": self.uid, "temp": self.temp, "queueby": self.queueby}


class MediaRefused(Exception):
    """A queue request the server answers with ``queueFail`` (``msg`` already HTML-escaped)."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


def resolve(
    catalog: Mapping[tuple[str, str], tuple[str, float]],
    media_type: str,
    media_id: str,
    *,
    title: str | None,
    duration: float | None,
) -> Media:
    """The media a ``queue {id, type, title?, duration?}`` stands for, or ``MediaRefused``."""
    known = catalog.get((media_type, media_id))
    if known is not None:
        media = Media(media_id, known[0], known[1], media_type)
    elif media_type == "rt":
        media = Media(media_id, "Livestream", 0, "rt")
    elif media_type == "hl":
        if not media_id.startswith("https://"):
            raise MediaRefused(sanitize_text(HLS_HTTPS))
        media = Media(media_id, "Livestream", 0, "hl")
    elif media_type == "cu":
        match = _IFRAME_SRC.match(media_id)
        if match is None:
            raise MediaRefused(sanitize_text(INVALID_EMBED))
        digest = base64.b64encode(hashlib.sha256(media_id.encode()).digest()).decode()
        media = Media("cu:" + digest, "Custom Media", 0, "cu", {"embed": {"tag": "iframe", "src": match[1]}})
    elif media_type == "tw":
        # get-info.js: no lookup, the first run of word characters is the channel (measured on 3.86)
        channel = _TWITCH_CHANNEL.search(media_id)
        if channel is None:
            raise MediaRefused(sanitize_text(INVALID_ID))
        media = Media(channel[0], f"Twitch.tv - {channel[0]}", 0, "tw")
    elif media_type == "li":
        if _LIVESTREAM_ID.match(media_id) is None:
            raise MediaRefused(sanitize_text(INVALID_ID))
        media = Media(media_id, "Livestream.com", 0, "li")
    elif media_type == "sc":
        raise MediaRefused(sanitize_text(SOUNDCLOUD_GONE))
    elif media_type == "fi":
        raise MediaRefused(sanitize_text(RAW_FILES_OFF))
    elif media_type == "cm":
        raise MediaRefused(sanitize_text(MANIFEST_404))
    elif media_type == "yt":
        raise MediaRefused(sanitize_text(NO_API_KEY))
    elif media_type in KNOWN_TYPES:
        raise MediaRefused(sanitize_text(f"Video not found: {media_type}:{media_id}"))
    else:
        raise MediaRefused(sanitize_text(f"Unknown media type '{media_type}'"))
    if title is not None and media_type in {"cu", "fi"}:
        media.title = title[:97] + "..." if len(title) > TITLE_LIMIT else title  # sent unescaped, as measured
    if duration is not None and media_type in LIVE_TYPES and duration > 0:
        media.seconds = duration  # honoured only for live types, and it makes them timed
    return media
