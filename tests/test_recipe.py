import pickle

import polars as pl
import pytest

from promptflow_dsl import (
    CompositionError,
    MissingColumnError,
    Recipe,
    drop,
    explode,
    filter,
    rename,
    sample,
    select,
    self_instruct,
    text_generation,
)

PIPELINE = (
    self_instruct.step(num_instructions=2)
    >> explode("instructions", into="instruction")
    >> text_generation.step()
)


def test_composition_is_flat_and_immutable():
    left = self_instruct.step() >> explode("instructions", into="instruction")
    whole = left >> (text_generation.step() >> select("generation"))
    assert repr(whole) == "self_instruct >> explode >> text_generation >> select"
    assert len(left) == 2  # composing did not change it
    assert Recipe().then(whole) == whole


def test_recipe_knows_its_input_columns_and_who_reads_them():
    assert PIPELINE.required_columns == {"input": "self_instruct"}
    recipe = rename(doc="input") >> PIPELINE
    assert recipe.required_columns == {"doc": "rename"}


def test_needing_a_removed_column_fails_at_composition():
    with pytest.raises(CompositionError, match="'input', which step 'select' removed"):
        self_instruct.step() >> select("instructions") >> self_instruct.step().named("again")
    with pytest.raises(CompositionError, match="'instructions', which step 'explode' removed"):
        PIPELINE >> explode("instructions")


def test_needing_an_unselected_input_column_fails_at_composition():
    with pytest.raises(CompositionError, match="not among the columns kept"):
        select("a") >> filter(pl.col("b") > 1)


def test_missing_input_column_fails_before_any_call_and_names_everything():
    with pytest.raises(MissingColumnError) as info:
        PIPELINE.run(pl.DataFrame({"document": ["x"]}), model="mock")
    message = str(info.value)
    assert "self_instruct" in message and "'input'" in message and "['document']" in message


def test_llm_columns_are_typed():
    out = PIPELINE.run(pl.DataFrame({"input": ["Rivers carve valleys over time."]}), model="mock")
    assert out.schema["instruction"] == pl.String and out.schema["generation"] == pl.String
    assert out.schema["model_name"] == pl.String and isinstance(out.schema["usage"], pl.Struct)
    lists = self_instruct.step().run(pl.DataFrame({"input": ["x y z"]}), model="mock")
    assert lists.schema["instructions"] == pl.List(pl.String)


def test_run_accepts_a_list_of_dicts_and_frame_pipe():
    rows = [{"input": "Glaciers move slowly."}]
    assert PIPELINE.run(rows, model="mock").height >= 1
    assert pl.DataFrame(rows).pipe(PIPELINE.run, model="mock").height >= 1


def test_step_without_a_model_says_how_to_give_one():
    with pytest.raises(Exception, match="has no model"):
        self_instruct.step().run(pl.DataFrame({"input": ["x"]}))


def test_frame_steps():
    frame = pl.DataFrame(
        {"a": [1, 2, 3, 4], "b": ["w", "x", "y", "z"], "c": [[1], [2, 3], [], [4]]}
    )
    assert (filter(pl.col("a") > 2) >> select("b")).run(frame)["b"].to_list() == ["y", "z"]
    assert rename(a="alpha").run(frame).columns == ["alpha", "b", "c"]
    assert drop("c").run(frame).columns == ["a", "b"]
    assert explode("c", into="item").run(frame)["item"].to_list() == [1, 2, 3, 4]
    with_null = pl.DataFrame({"c": [[1], None]}, schema={"c": pl.List(pl.Int64)})
    assert explode("c").run(with_null)["c"].to_list() == [1, None]
    once, twice = sample(2, seed=7).run(frame), sample(2, seed=7).run(frame)
    assert once.equals(twice) and once.height == 2
    assert sample(10).run(frame).height == 4
    assert sample(fraction=0.5).run(frame).height == 2


def test_filter_needs_an_expression():
    with pytest.raises(TypeError, match="Polars expression"):
        filter("a > 1")


def test_steps_and_recipes_pickle():
    recipe = self_instruct.step(num_instructions=2) >> explode("instructions", into="instruction")
    assert repr(pickle.loads(pickle.dumps(recipe))) == repr(recipe)
