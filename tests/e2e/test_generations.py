"""Several generations per prompt: distinct samples, distinct cache entries, two shapes."""

import polars as pl
import pytest

from promptflow_dsl import AttributeValueError, Model, explode, self_instruct, text_generation
from promptflow_dsl.testing import LoopbackServer, Reply


def model_at(server):
    return Model("openai/loopback", api_base=server.api_base, api_key="sk-test")


def test_num_generations_gives_a_list_of_distinct_samples_offline():
    frame = pl.DataFrame({"instruction": ["Name a river.", "Name a lake."]})
    out = text_generation.step(num_generations=4).run(frame, model="mock")
    assert out.schema["generations"] == pl.List(pl.String)
    for samples in out["generations"].to_list():
        assert len(samples) == 4 and len(set(samples)) == 4
    assert out["usage"].struct.field("attempts").to_list() == [4, 4]


def test_samples_are_distinct_cache_entries_and_a_rerun_makes_no_call(tmp_path):
    frame = pl.DataFrame({"instruction": ["Name a river.", "Name a river.", "Name a lake."]})
    step = text_generation.step(num_generations=3)
    cache = tmp_path / "cache.sqlite"
    with LoopbackServer(seed=3) as server:
        first = step.execute(frame, model=model_at(server), cache=cache)
        assert server.stats.requests == 9  # 3 rows x 3 samples, repeated prompt included
        again = step.execute(frame, model=model_at(server), cache=cache)
        assert server.stats.requests == 9
    assert first.frame["generations"].to_list() == again.frame["generations"].to_list()
    assert again.summary.calls == 0 and again.summary.cache_hits == 9


def test_explode_generations_gives_a_row_per_sample_with_its_index():
    frame = pl.DataFrame({"instruction": ["Name a river.", None]})
    out = text_generation.step(num_generations=3, explode_generations=True).run(frame, model="mock")
    assert out["generation_index"].to_list() == [0, 1, 2, None]
    assert out["generation"].null_count() == 1
    assert out["error"].to_list()[3]["type"] == "MissingInput"


def test_a_row_with_one_failed_sample_fails_with_the_reason_and_counts_every_call():
    calls = iter(range(1000))

    def one_bad(request):
        return Reply(status=400, json={"error": {"message": "bad"}}) if next(calls) == 1 else None

    frame = pl.DataFrame({"instruction": ["Name a river."]})
    with LoopbackServer(responder=one_bad) as server:
        out = text_generation.step(num_generations=3).run(
            frame, model=model_at(server), cache=False, max_concurrency=1
        )
        assert out["error"].to_list()[0]["type"] == "ProviderError"
        assert out["generations"].to_list() == [None]
        assert out["usage"].struct.field("attempts").to_list() == [server.stats.requests]


def test_generations_compose_with_the_steps_before_and_after():
    recipe = (
        self_instruct.step(num_instructions=2)
        >> explode("instructions", into="instruction")
        >> text_generation.step(num_generations=2)
    )
    assert "generations" in recipe.produced_columns
    out = recipe.run(pl.DataFrame({"input": ["Rivers carve valleys."]}), model="mock")
    assert out.height == 2 and out["generations"].list.len().to_list() == [2, 2]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_a_bad_num_generations_is_refused_when_the_step_is_built(bad):
    with pytest.raises(AttributeValueError, match="num_generations"):
        text_generation.step(num_generations=bad)


def test_show_types_the_columns_of_samples():
    from promptflow_dsl._io.describe import describe_recipe

    listed = describe_recipe(text_generation.step(num_generations=2) >> explode("generations"))
    exploded = describe_recipe(
        (text_generation.step(num_generations=2, explode_generations=True)).then(explode("notes"))
    )
    assert "writes:  generations: List(String)" in listed
    assert "generation: String, generation_index: Int64" in exploded
