import asyncio
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


# pandas and pyarrow frames: taken as frames, returned as the same kind when asked


def test_a_pandas_frame_is_read_by_its_columns_not_as_one_column():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"input": ["Glaciers move slowly.", "Rivers carve valleys."]})
    out = self_instruct.step(num_instructions=2).run(frame, model="mock")
    assert isinstance(out, pl.DataFrame)
    assert out["input"].to_list() == frame["input"].to_list()
    assert "column_0" not in out.columns


def test_output_same_gives_pandas_back_with_lists_and_dicts_in_nested_cells():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"input": ["a b c", "d e f", "g h i"]}, index=[30, 10, 20])
    out = self_instruct.step(num_instructions=2).run(frame, model="mock", output="same")
    assert isinstance(out, pd.DataFrame)
    assert out["input"].tolist() == ["a b c", "d e f", "g h i"]  # row order, not index order
    assert list(out.index) == [0, 1, 2]
    assert out["instructions"].dtype == object
    assert all(isinstance(cell, list) and len(cell) == 2 for cell in out["instructions"])
    assert all(isinstance(item, str) for cell in out["instructions"] for item in cell)
    assert all(isinstance(cell, dict) and "input_tokens" in cell for cell in out["usage"])


def test_a_recipe_that_adds_rows_returns_a_fresh_pandas_index():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"input": ["Glaciers move slowly."]}, index=[7])
    out = PIPELINE.run(frame, model="mock", output="same")
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list(range(len(out))) and len(out) == 2
    assert set(out["input"]) == {"Glaciers move slowly."}
    assert all(isinstance(text, str) for text in out["generation"])


def test_a_pandas_series_is_a_frame_of_one_column_of_its_name():
    pd = pytest.importorskip("pandas")
    out = self_instruct.step().run(pd.Series(["a b", "c d"], name="input"), model="mock")
    assert out["input"].to_list() == ["a b", "c d"]


def test_a_named_pandas_index_is_kept_as_a_column():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"input": ["a b", "c d"]}, index=pd.Index(["d1", "d2"], name="doc_id"))
    out = self_instruct.step().run(frame, model="mock")
    assert out["doc_id"].to_list() == ["d1", "d2"]


def test_a_pyarrow_table_runs_and_comes_back_as_a_table_when_asked():
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"input": ["a b c", "d e f"]})
    polars_out = self_instruct.step(num_instructions=2).run(table, model="mock")
    assert isinstance(polars_out, pl.DataFrame) and polars_out["input"].to_list() == [
        "a b c",
        "d e f",
    ]
    out = self_instruct.step(num_instructions=2).run(table, model="mock", output="same")
    assert isinstance(out, pa.Table)
    assert pa.types.is_large_list(out.schema.field("instructions").type)
    assert pa.types.is_struct(out.schema.field("usage").type)
    assert [len(cell) for cell in out.column("instructions").to_pylist()] == [2, 2]


def test_arun_returns_the_same_kind_too():
    pd = pytest.importorskip("pandas")
    running = PIPELINE.arun(pd.DataFrame({"input": ["x y"]}), model="mock", output="same")
    out = asyncio.run(running)
    assert isinstance(out, pd.DataFrame) and "generation" in out.columns


def test_execute_takes_pandas_and_keeps_polars_in_its_result():
    pd = pytest.importorskip("pandas")
    result = PIPELINE.execute(pd.DataFrame({"input": ["x y"]}), model="mock")
    assert isinstance(result.frame, pl.DataFrame) and result.summary.rows_in == 1


def test_output_same_on_polars_or_dicts_gives_polars():
    rows = [{"input": "x y"}]
    assert isinstance(PIPELINE.run(rows, model="mock", output="same"), pl.DataFrame)
    assert isinstance(PIPELINE.run(pl.DataFrame(rows), model="mock", output="same"), pl.DataFrame)


def test_an_unknown_output_kind_fails_before_any_call():
    with pytest.raises(ValueError, match="output='pandas' is not known"):
        PIPELINE.run([{"input": "x"}], output="pandas")  # type: ignore[call-overload]


def test_a_recipe_that_calls_no_model_opens_no_cache(tmp_path):
    cache = tmp_path / "cache.sqlite"
    frame = pl.DataFrame({"text": ["a", "b"], "tags": [["x"], ["y", "z"]]})
    out = (rename(text="document") >> explode("tags", into="tag")).run(frame, cache=cache)
    assert out.height == 3
    assert not cache.exists()
