import atexit
import os
import shutil
import socket
import tempfile

from hypothesis import HealthCheck, settings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
# Tests never touch the user's cache: each session gets its own.
os.environ["PROMPTFLOW_CACHE_DIR"] = tempfile.mkdtemp(prefix="promptflow-test-cache-")
atexit.register(shutil.rmtree, os.environ["PROMPTFLOW_CACHE_DIR"], ignore_errors=True)

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("fuzz", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# No test may reach beyond this machine: refuse any connection that is not loopback.
_LOCAL = ("127.", "::1", "localhost", "0.0.0.0")
_getaddrinfo = socket.getaddrinfo


def _local_getaddrinfo(host, *args, **kwargs):
    if host is not None and not str(host).startswith(_LOCAL):
        message = f"tests may not reach {host!r}: only loopback is allowed"
        raise OSError(message)
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _local_getaddrinfo
