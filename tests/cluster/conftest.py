"""A local Ray cluster for the Ray engine's tests: 2 CPUs, no dashboard, no usage stats.

The folder is not named ``ray``: as a test package, that name would hide Ray itself. The
tests run in CI's Ray stage (``pip install -e ".[ray]"``); where Ray is not installed,
each module skips itself (``pytest.importorskip``).
"""

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_cluster():
    """The local cluster, started once for the session."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=300 * 2**20,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()
