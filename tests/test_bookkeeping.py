"""Bookkeeping columns (model_name, usage, error) that come back from a file keep their meaning."""

import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from promptflow_dsl import Recipe, ReservedColumnError, text_generation
from promptflow_dsl._io.frames import read_frame, write_frame

FAILED = {
    "step": "self_instruct",
    "type": "ParseError",
    "message": 'no instruction found (expected "a numbered list")',
    "attempts": 2,
    "raw_reply": "???",
}
STEP = text_generation.step()

text = st.one_of(st.none(), st.text())
errors = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "step": st.text(),
            "type": st.text(),
            "message": st.text(),
            "attempts": st.integers(0, 10),
            "raw_reply": text,
        }
    ),
)
usages = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "input_tokens": st.integers(0, 10**6),
            "output_tokens": st.integers(0, 10**6),
            "cost_usd": st.floats(0, 100, allow_nan=False),
            "latency_s": st.floats(0, 100, allow_nan=False),
            "attempts": st.integers(1, 10),
            "cache_hit": st.booleans(),
        }
    ),
)


BOOKKEEPING = ["model_name", "usage", "error"]
WRITTEN = STEP.run(pl.DataFrame({"instruction": ["a"]}), model="mock").select(BOOKKEEPING).schema


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".parquet"])
@given(rows=st.lists(st.tuples(text, usages, errors), min_size=1, max_size=5))
@example(rows=[("0", None, None)])  # a model name that CSV would read as a number
def test_bookkeeping_columns_survive_every_format_exactly(tmp_path_factory, suffix, rows):
    columns = {"model_name": [r[0] for r in rows], "usage": [r[1] for r in rows]}
    frame = pl.DataFrame({**columns, "error": [r[2] for r in rows]}, schema=WRITTEN)
    path = tmp_path_factory.mktemp("rows") / f"rows{suffix}"
    write_frame(frame, path)
    back = Recipe().run(read_frame(path))
    assert back.schema == frame.schema
    assert back.to_dicts() == frame.to_dicts()


@pytest.mark.parametrize(
    "error",
    [
        '{"step": "self_instruct", "type": "ParseError", "message": '
        '"no instruction found (expected \\"a numbered list\\")", "attempts": 2, "raw_reply": "???"}',
        {"raw_reply": "???", "attempts": 2, "message": FAILED["message"], "type": "ParseError",
         "step": "self_instruct"},
    ],
    ids=["json text", "fields in another order"],
)  # fmt: skip
def test_a_row_that_failed_before_stays_failed_with_its_error(error):
    rows = pl.DataFrame({"instruction": ["Name a colour.", "Name a bird."], "error": [None, error]})
    out = STEP.run(rows, model="mock")
    assert out["error"].to_list() == [None, FAILED]
    assert out["generation"][0] and out["generation"][1] is None


def test_fields_that_are_missing_or_always_null_are_restored():
    rows = pl.DataFrame(
        {"instruction": ["a"], "error": [{"step": "s", "raw_reply": None}], "model_name": [None]}
    )
    out = Recipe().run(rows)
    assert out["error"][0] == {
        "step": "s", "type": None, "message": None, "attempts": None, "raw_reply": None
    }  # fmt: skip
    assert out.schema["model_name"] == pl.String


def test_a_run_of_a_normalised_frame_changes_nothing_more():
    rows = pl.DataFrame({"instruction": ["a"], "error": ['{"step": "s"}']})
    once = Recipe().run(rows)
    assert Recipe().run(once).equals(once)


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("error", [1, 2]),
        ("error", ["a user's note", None]),
        ("error", ['{"code": 5}', None]),
        ("error", ['{"attempts": "many"}', None]),
        ("usage", ["high", "low"]),
        ("usage", [[1], [2]]),
        ("model_name", [1.5, 2.5]),
    ],
)
def test_a_column_that_only_shares_the_name_is_refused(column, values):
    rows = pl.DataFrame({"instruction": ["a", "b"], column: values})
    with pytest.raises(ReservedColumnError, match=rf"input column '{column}' holds .* rename"):
        STEP.run(rows, model="mock")
