"""The preference pipeline end to end: samples, a judge, pairs and DPO rows.

``self_instruct >> explode >> text_generation(num_generations=4) >> ultrafeedback >>
preference_pairs >> to_training_format("dpo")``, the bundled ``recipes/preference_pairs.py``
on the bundled documents: offline, and over HTTP to the loopback server through the CLI.
"""

import subprocess
from pathlib import Path

import polars as pl

from promptflow_dsl import Model, Recipe, to_training_format
from promptflow_dsl._io.recipes import load_recipe
from promptflow_dsl.testing import LoopbackServer

from ._cli import promptflow_run, run_env

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "preference_pairs.py"
DOCUMENTS = ROOT / "recipes" / "data" / "documents.jsonl"


def _documents() -> pl.DataFrame:
    return pl.read_ndjson(DOCUMENTS)


def test_the_bundled_recipe_makes_dpo_rows_offline():
    recipe = load_recipe(RECIPE)
    out = recipe.run(_documents(), model="mock")
    assert out.columns == ["prompt", "chosen", "rejected"]
    assert out.height == 3 * _documents().height
    paired = out.drop_nulls()
    assert paired.height > 0 and (paired["chosen"] != paired["rejected"]).all()


def test_every_pair_is_the_judges_best_against_its_worst_over_http():
    steps = load_recipe(RECIPE).steps[:-1]  # all but the export: the scores stay visible

    with LoopbackServer(seed=11) as server:
        model = Model("openai/loopback", api_base=server.api_base, api_key="sk-test")
        result = Recipe(steps).execute(_documents().head(3), model=model, cache=False)
        assert result.summary.calls == server.stats.requests
    out = result.frame
    assert out["error"].null_count() == out.height
    assert out["generations"].list.len().unique().to_list() == [4]
    assert out["ratings"].list.len().unique().to_list() == [4]
    assert out["chosen"].null_count() < out.height  # some pairs were made
    for row in out.iter_rows(named=True):
        if row["chosen"] is None:
            assert any("no pair" in note for note in row["notes"])
            continue
        best = max(row["ratings"])
        assert row["chosen_score"] == best and row["chosen_score"] - row["rejected_score"] >= 1.0
        assert row["chosen"] == row["generations"][row["ratings"].index(best)]
    dpo = to_training_format("dpo").run(out)
    assert dpo["prompt"].to_list() == out["instruction"].to_list()


def test_the_cli_runs_the_bundled_recipe_over_http_and_a_rerun_makes_no_call(tmp_path):
    source = tmp_path / "docs.jsonl"
    _documents().head(2).write_ndjson(source)
    output = tmp_path / "pairs.jsonl"
    with LoopbackServer(seed=5) as server:
        command = promptflow_run(RECIPE, source, output, "--no-progress", server=server)
        done = subprocess.run(command, env=run_env(tmp_path), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        first = server.stats.requests
        assert first == 2 + 6 * 4 + 6  # documents, samples, judgements
        again = subprocess.run(command, env=run_env(tmp_path), capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert server.stats.requests == first
    frame = pl.read_ndjson(output)
    assert frame.columns == ["prompt", "chosen", "rejected"] and frame.height == 6
