import subprocess
import sys
import types

import promptflow_dsl


def test_all_is_sorted_and_complete():
    public = {
        name
        for name, value in vars(promptflow_dsl).items()
        if not name.startswith(("_", "@")) and not isinstance(value, types.ModuleType)
    }
    assert promptflow_dsl.__all__ == sorted(promptflow_dsl.__all__)
    assert set(promptflow_dsl.__all__) == public


def test_import_does_not_load_litellm_and_is_fast():
    code = (
        "import time, sys; t = time.perf_counter(); import promptflow_dsl; "
        "print(time.perf_counter() - t, 'litellm' in sys.modules, 'instructor' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, litellm_loaded, instructor_loaded = out.stdout.split()
    assert litellm_loaded == "False" and instructor_loaded == "False"
    assert float(seconds) < 2.0  # generous: shared CI machines are noisy; typical is ~0.2 s


def test_import_sets_the_local_price_map_default():
    code = "import os, promptflow_dsl; print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])"
    env = {k: v for k, v in __import__("os").environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "True"
