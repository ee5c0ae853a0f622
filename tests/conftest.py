import os
import tempfile

from hypothesis import HealthCheck, settings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Tests never touch the user's cache: each session gets its own.
os.environ["PROMPTFLOW_CACHE_DIR"] = tempfile.mkdtemp(prefix="promptflow-test-cache-")

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("fuzz", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
