"""The root of the configuration file (``DazConfig``), which gathers the sections, and the ``logging``
section."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from daz.config._base import _Model, merge_over_defaults
from daz.config.cluster import ClusterConfig
from daz.config.cytube import CytubeConfig, RoomConfig
from daz.config.database import DatabaseConfig
from daz.config.health import HealthConfig
from daz.config.masking import dsn_password
from daz.config.retry import BreakerConfig, RetryBudgetConfig, RetryConfig, SpoolConfig
from daz.errors import ConfigError


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level printed (library loggers stay at warning)."""
    format: Literal["auto", "console", "json"] = "auto"
    """`console` on a terminal and `json` otherwise when `auto`."""


def _default_plugins() -> dict[str, dict[str, Any]]:
    return {"commands": {}, "chatlog": {}}


class DazConfig(_Model):
    """The root of the configuration file."""

    rooms: list[RoomConfig] = Field(default_factory=list)
    cytube: CytubeConfig = CytubeConfig()
    database: DatabaseConfig = DatabaseConfig()
    retry: RetryConfig = RetryConfig()
    breakers: dict[str, BreakerConfig] = Field(
        default_factory=lambda: {"default": BreakerConfig(), "database": BreakerConfig()}
    )
    """Circuit breakers by name: `default`, `database`, a family (`cytube`, `http`) or an exact name
    (`cytube:lobby`); a breaker uses its exact entry, else its family's, else `default`. Entries are
    merged over the built-in `default` and `database` ones field by field."""

    @field_validator("breakers", mode="before")
    @classmethod
    def _merge_breakers(cls, value: Any) -> Any:
        return merge_over_defaults(value, {"default": {}, "database": {}})
    retry_budget: RetryBudgetConfig = RetryBudgetConfig()
    spool: SpoolConfig = SpoolConfig()
    health: HealthConfig = HealthConfig()
    logging: LoggingConfig = LoggingConfig()
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=_default_plugins,
        description="plugin name -> its own settings (validated by the plugin)",
    )
    cluster: ClusterConfig = ClusterConfig()

    @model_validator(mode="after")
    def _unique_rooms(self) -> DazConfig:
        seen: set[str] = set()
        for room in self.rooms:
            if room.channel in seen:
                raise ValueError(f"room '{room.channel}' is listed twice")
            seen.add(room.channel)
        return self

    def secrets(self) -> list[str]:
        """Every configured secret value, for the log redaction processor."""
        values: list[str] = []
        for room in self.rooms:
            values.extend(
                s.get_secret_value() for s in (room.password, room.channel_password) if s is not None
            )
            try:
                resolved = room.resolved_password()
            except ConfigError:
                resolved = None
            if resolved is not None:
                values.append(resolved.get_secret_value())
        password = dsn_password(self.database.url.get_secret_value())
        if password:
            values.append(password)
        if self.health.admin_token is not None:
            values.append(self.health.admin_token.get_secret_value())
        return [v for v in values if v]
