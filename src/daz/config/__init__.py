"""The whole configuration: pydantic v2 models, a JSON file (sections
``rooms``, ``retry.retry_policies``, ``database``, ... as documented), ``DAZ_*`` overrides.

Every model forbids unknown fields so a typo is an error, not a silently ignored setting. Problems
are reported as one line per field: ``retry.worker_count: must be at least 1 (got -3)``.
Secrets are ``SecretStr`` and may also come from a file (``password_file``) or an environment
variable; they are masked wherever the configuration is shown.

The models live by section (``cytube``, ``database``, ``retry``, ``health``, ``cluster``; the root
``DazConfig`` in ``root``), loading in ``loading``, problem lines in ``problems``, masking in
``masking``; every public name is re-exported here, so ``from daz.config import X`` is the way in.
"""

from daz.config._base import Fraction, NonNegativeSeconds, PositiveSeconds, merge_over_defaults
from daz.config.cluster import ClusterConfig
from daz.config.cytube import (
    DEFAULT_CYTUBE_BASE_URL,
    BackoffConfig,
    CytubeConfig,
    ProbeConfig,
    RoomConfig,
    ServerLimitsConfig,
)
from daz.config.database import DEFAULT_SQLITE_URL, DatabaseConfig, PoolConfig
from daz.config.health import HealthConfig, HealthThresholds
from daz.config.loading import DATABASE_URL_ENV, ENV_PREFIX, apply_env_overrides, load_config, validate_config
from daz.config.masking import MASK, dsn_password, mask_dsn, masked_dict
from daz.config.problems import format_problem
from daz.config.retry import BreakerConfig, RetryBudgetConfig, RetryConfig, RetryPolicyConfig, SpoolConfig
from daz.config.root import DazConfig, LoggingConfig

__all__ = [
    "DATABASE_URL_ENV",
    "DEFAULT_CYTUBE_BASE_URL",
    "DEFAULT_SQLITE_URL",
    "ENV_PREFIX",
    "MASK",
    "BackoffConfig",
    "BreakerConfig",
    "ClusterConfig",
    "CytubeConfig",
    "DatabaseConfig",
    "DazConfig",
    "Fraction",
    "HealthConfig",
    "HealthThresholds",
    "LoggingConfig",
    "NonNegativeSeconds",
    "PoolConfig",
    "PositiveSeconds",
    "ProbeConfig",
    "RetryBudgetConfig",
    "RetryConfig",
    "RetryPolicyConfig",
    "RoomConfig",
    "ServerLimitsConfig",
    "SpoolConfig",
    "apply_env_overrides",
    "dsn_password",
    "format_problem",
    "load_config",
    "mask_dsn",
    "masked_dict",
    "merge_over_defaults",
    "validate_config",
]
