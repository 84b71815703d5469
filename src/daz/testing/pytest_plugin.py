"""pytest fixtures of the fault-injection kit.

Enable them in a root ``conftest.py`` with ``pytest_plugins = ["daz.testing.pytest_plugin"]``.

- ``pg_cluster``: a started throwaway :class:`~daz.testing.pgcluster.PgCluster` per test, destroyed
  afterwards. Use it when the test stops, kills or restarts PostgreSQL.
- ``pg_cluster_session``: one cluster shared by the session (cheaper; leave it running when done).

Where PostgreSQL's server binaries are missing the fixtures skip with the reason, except under
``CI=true``, where a skipped fault test would hide a gap: there they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from daz.testing.pgcluster import PgCluster, unavailable_reason


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_cluster() -> None:
    """Skip (locally) or fail (CI=true) when a throwaway cluster cannot be started here."""
    reason = unavailable_reason()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
async def pg_cluster() -> AsyncIterator[PgCluster]:
    """A started throwaway cluster; ``pg_cluster.dsn`` connects (trust auth, no password)."""
    require_cluster()
    async with PgCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg_cluster_session() -> Iterator[PgCluster]:
    """One throwaway cluster for the whole session; tests must leave it running."""
    require_cluster()
    with PgCluster() as cluster:
        yield cluster
