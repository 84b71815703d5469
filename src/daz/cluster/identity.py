"""Instance identity: configured, or generated once and kept in a file so restarts keep it."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

from daz.errors import ConfigError


def resolve_instance_id(configured: str | None, id_file: Path) -> str:
    if configured:
        return configured
    try:
        existing = id_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    except OSError as exc:
        raise ConfigError(
            f"cluster.instance_id_file: cannot read {id_file} ({exc.strerror}); "
            "set cluster.instance_id or fix the path"
        ) from exc
    if existing:
        return existing
    generated = f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:8]}"
    try:
        id_file.write_text(generated + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cluster.instance_id_file: cannot write {id_file} ({exc.strerror}); "
            "set cluster.instance_id or point instance_id_file at a writable path"
        ) from exc
    return generated
