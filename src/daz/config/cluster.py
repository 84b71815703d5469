"""The ``cluster`` section: scale-out on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from daz.config._base import PositiveSeconds, _Model


class ClusterConfig(_Model):
    """Scale-out on PostgreSQL: rooms leased to exactly one instance."""

    enabled: bool = False
    """Lease rooms through PostgreSQL so several instances share them (docs/scale-out.md); ignored with
    SQLite, where this instance joins every room."""
    instance_id: Annotated[str, Field(pattern=r"^[\w.-]{1,64}$")] | None = None
    """This instance's name in the lease tables; unset: generated once as `<host>-<8 hex>` and kept in
    instance_id_file."""
    instance_id_file: Path = Path(".daz-instance-id")
    """Where a generated instance_id is kept so that a restarted instance keeps its name."""
    lease_seconds: PositiveSeconds = 10.0
    """A room lease lasts this long without renewal; a crashed instance's rooms move to others after at
    most this."""
    renew_interval_seconds: PositiveSeconds = 3.0
    """Heartbeat/renew/acquire period and the time limit of one such tick; at most half of lease_seconds. A
    room is left once its last confirmed renewal is older than lease_seconds minus this."""
    instance_timeout_seconds: PositiveSeconds = 15.0
    """An instance without a heartbeat for this long counts as dead and its leases may be taken."""
    rebalance_interval_seconds: PositiveSeconds = 30.0
    """When the spread is unfair, an instance hands back rooms at most once per interval, so rooms move
    gradually."""
    presence_timeout_seconds: PositiveSeconds = 1.0
    """An instance that cannot prove its presence lock (a query on its dedicated PostgreSQL connection)
    for this long leaves its rooms; the others take a crashed instance's rooms this long plus 0.75 s
    after its session ended, whatever lease_seconds is (docs/scale-out.md)."""

    @model_validator(mode="after")
    def _renew_inside_lease(self) -> ClusterConfig:
        if self.renew_interval_seconds * 2 > self.lease_seconds:
            raise ValueError("renew_interval_seconds must be at most half of lease_seconds")
        return self
