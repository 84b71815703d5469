"""Secrets masked for display: the password in a DSN, the secrets of a whole configuration."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the annotation only: root and database import this module, so no cycle at run time
    from daz.config.root import DazConfig

MASK = "**********"


_DSN_PASSWORD = re.compile(
    r"^(?P<head>[a-z][a-z0-9+.-]*://[^:/@]*:)(?P<pw>[^@]*)(?P<tail>@.*)$", re.IGNORECASE
)


def dsn_password(dsn: str) -> str | None:
    match = _DSN_PASSWORD.match(dsn)
    return match.group("pw") if match else None


def mask_dsn(dsn: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:**********@h/db``."""
    match = _DSN_PASSWORD.match(dsn)
    if not match:
        return dsn
    return f"{match.group('head')}{MASK}{match.group('tail')}"


def masked_dict(config: DazConfig) -> dict[str, Any]:
    """The effective configuration as plain data with every secret masked (for display)."""
    data = config.model_dump(mode="json")
    data["database"]["url"] = config.database.display_url()
    for room in data["rooms"]:
        for key in ("password", "channel_password"):
            if room.get(key) is not None:
                room[key] = MASK
    if data["health"].get("admin_token") is not None:
        data["health"]["admin_token"] = MASK
    return data
