"""What the Ray engine refuses, said in one line, before a cluster is started: these run in
every environment, with or without Ray (tests/cluster runs the engine itself)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from promptflow_dsl import EngineError, text_generation

RECIPE = Path(__file__).parents[1] / "recipes" / "self_instruct.py"
DOCUMENTS = Path(__file__).parents[1] / "recipes" / "data" / "documents.jsonl"


def promptflow(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "promptflow_dsl", "run", str(RECIPE), "-i", str(DOCUMENTS)]
    return subprocess.run([*command, *arguments], capture_output=True, text=True)


def test_the_ray_options_are_refused_on_one_machine():
    frame = pl.DataFrame({"instruction": ["x"]})
    with pytest.raises(EngineError, match="options of the Ray engine"):
        text_generation.step().run(frame, model="mock", workers=2)
    with pytest.raises(EngineError, match="options of the Ray engine"):
        text_generation.step().execute(frame, model="mock", cpus_per_worker=1.0)


def test_a_dry_run_on_ray_is_refused_in_one_line(tmp_path):
    done = promptflow("-o", str(tmp_path / "out"), "--engine", "ray", "--dry-run")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: --dry-run rehearses on this machine: leave out --engine ray"
    )


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed")
def test_without_ray_the_engine_says_how_to_install_it(tmp_path):
    done = promptflow("-o", str(tmp_path / "out"), "--engine", "ray")
    assert done.returncode == 1
    assert "pip install 'promptflow_dsl[ray]'" in done.stderr
    assert not (tmp_path / "out").exists()
