"""On Ray, a recipe yields the rows it yields on one machine, failures and bookkeeping
included, through real LiteLLM and Instructor over HTTP to the loopback server."""

from pathlib import Path

import polars as pl
import pytest

ray = pytest.importorskip("ray")

from promptflow_dsl import (  # noqa: E402
    EngineError,
    Model,
    RetryPolicy,
    dedup_exact,
    explode,
    self_instruct,
    text_generation,
)
from promptflow_dsl._io.recipes import load_recipe  # noqa: E402
from promptflow_dsl.testing import LoopbackServer, Reply  # noqa: E402

from ._helpers import collect, model_at  # noqa: E402

RECIPES = Path(__file__).parents[2] / "recipes"
ROW = ["input", "instruction", "generation", "model_name"]


def rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.select(ROW).iter_rows())


def test_the_bundled_self_instruct_recipe_yields_the_same_rows_as_one_machine(
    ray_cluster, tmp_path
):
    recipe = load_recipe(RECIPES / "self_instruct.py")
    documents = pl.read_ndjson(RECIPES / "data" / "documents.jsonl")
    with LoopbackServer() as server:
        local = recipe.run(documents, model=model_at(server), cache=False, progress=False)
        calls = server.stats.requests
        out = collect(
            recipe.run(
                ray.data.from_arrow(documents.to_arrow()),
                model=model_at(server),
                cache=tmp_path / "cache.sqlite",
                max_concurrency=4,
                workers=2,
            )
        )
        assert server.stats.requests == 2 * calls  # one call per row and step, as locally
    assert local.height == out.height == 3 * documents.height
    assert rows(out) == rows(local)
    assert out.columns == local.columns and out.schema == local.schema
    assert out["error"].is_null().all()
    assert out["usage"].struct.field("input_tokens").min() > 0
    assert set(out["model_name"]) == {"openai/loopback-model"}


def test_failed_rows_keep_their_inputs_and_say_why(ray_cluster):
    def responder(request):
        if "BROKEN" in request.text:
            return Reply(status=500)
        from promptflow_dsl.testing import default_responder

        return default_responder(request)

    frame = pl.DataFrame(
        {"input": [f"{'BROKEN' if i % 3 == 0 else 'fine'} {i}" for i in range(12)]}
    )
    retry = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.05)
    with LoopbackServer(responder=responder) as server:
        local = self_instruct.step().run(frame, model=model_at(server), cache=False, retry=retry)
        out = collect(
            self_instruct.step().run(
                ray.data.from_arrow(frame.to_arrow()),
                model=model_at(server),
                cache=False,
                retry=retry,
                max_concurrency=3,
                workers=2,
            )
        )
    key = ["input", "instructions", "model_name", "error"]
    assert sorted(out.select(key).iter_rows()) == sorted(local.select(key).iter_rows())
    failed = out.filter(pl.col("error").is_not_null()).sort("input")
    assert failed["input"].to_list() == ["BROKEN 0", "BROKEN 3", "BROKEN 6", "BROKEN 9"]
    errors = failed["error"].struct.unnest()
    assert set(errors["type"]) == {"ProviderError"} and set(errors["attempts"]) == {2}
    assert failed["usage"].struct.field("attempts").to_list() == [2] * 4


def test_a_step_that_needs_every_row_is_refused_before_anything_runs(ray_cluster):
    recipe = (
        self_instruct.step()
        >> explode("instructions", into="instruction")
        >> dedup_exact("instruction")
    )
    with pytest.raises(EngineError, match="step 'dedup_exact' needs every row at once") as info:
        recipe.run(ray.data.from_items([{"input": "x"}]), model="mock")
    assert "\n" not in str(info.value) and info.value.step == "dedup_exact"


def test_batch_mode_is_refused_on_ray_before_anything_runs(ray_cluster):
    """A provider's batch does the work and a run waits hours for it: it runs on one
    machine. On Ray it is refused in one line, for the run's setting or a step's model."""
    dataset = ray.data.from_items([{"instruction": "x"}])
    with pytest.raises(EngineError, match="batch mode runs on one machine"):
        text_generation.step().run(dataset, model="openai/gpt-4o-mini", batch=True)
    with pytest.raises(EngineError, match="batch mode runs on one machine"):
        text_generation.step(model=Model("openai/gpt-4o-mini", batch=True)).run(dataset)
