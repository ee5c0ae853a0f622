"""The embed step offline: columns, failed rows, the model it needs, usage shares, keys."""

import asyncio
import gc

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptflow_dsl import Model, ModelSettingError, Session, embed, text_generation
from promptflow_dsl._engine._embeddings import _shares, embed_texts, embedding_key
from promptflow_dsl._engine._types import Usage
from promptflow_dsl._vectors import hashed_embedding


def test_offline_vectors_are_the_hashed_embeddings_as_float32():
    frame = pl.DataFrame({"instruction": ["Write a poem.", "Name a river."]})
    out = embed().run(frame, model="mock")
    assert out.schema["embedding"] == pl.List(pl.Float32)
    assert out["embedding"][0].to_list() == pytest.approx(hashed_embedding("Write a poem."))
    assert out["model_name"].to_list() == ["mock (offline, fabricated)"] * 2
    assert out.columns[-4:] == ["model_name", "usage", "error", "notes"]
    assert out["usage"].struct.field("attempts").sum() == 1  # one request for both rows


def test_rows_without_text_fail_and_earlier_failures_are_kept():
    earlier = {"step": "gen", "type": "ProviderError", "message": "boom", "attempts": 1}
    frame = pl.DataFrame(
        {
            "instruction": ["Fine.", None, "  ", "Skipped."],
            "error": [None, None, None, {**earlier, "raw_reply": None}],
        }
    )
    out = embed().run(frame, model="mock")
    errors = out["error"].to_list()
    assert errors[0] is None and out["embedding"][0] is not None
    assert errors[1]["type"] == "MissingInput" and "is null" in errors[1]["message"]
    assert errors[2]["type"] == "MissingInput" and "is empty" in errors[2]["message"]
    assert errors[3]["message"] == "boom" and out["embedding"][3] is None
    assert out["usage"][3] is None  # it made no call


def test_numbers_are_read_as_text_and_lists_are_refused():
    out = embed("x").run(pl.DataFrame({"x": [7, 8]}), model="mock")
    assert out["embedding"][0].to_list() == pytest.approx(hashed_embedding("7"))
    listed = embed("x").run(pl.DataFrame({"x": [["a"], ["b"]]}), model="mock")
    assert listed["error"].struct.field("type").to_list() == ["InputTypeError"] * 2


def test_a_chat_model_is_no_embedding_model():
    frame = pl.DataFrame({"instruction": ["Hi."]})
    with pytest.raises(ModelSettingError, match="needs an embedding model"):
        embed().run(frame, model="openai/gpt-4o-mini")
    with pytest.raises(ModelSettingError, match="text-embedding-3-small"):
        embed().run(frame)


def test_a_frame_of_failed_rows_needs_no_model():
    frame = pl.DataFrame({"instruction": [None]}, schema={"instruction": pl.String})
    out = embed().run(frame, model="openai/gpt-4o-mini")
    assert out["error"][0]["type"] == "MissingInput"


def test_the_steps_options_are_checked():
    with pytest.raises(ValueError, match="batch_size=0"):
        embed(batch_size=0)
    with pytest.raises(ValueError, match="dimensions=0"):
        embed(dimensions=0)
    step = embed("text", into="vec", model="openai/text-embedding-3-small", dimensions=64)
    assert step.contract.needs == {"text"} and step.contract.adds[0] == "vec"
    assert repr(text_generation.step() >> step.named("vectors")) == "text_generation >> vectors"


def test_dimensions_shorten_offline_vectors():
    out = embed(dimensions=16).run(pl.DataFrame({"instruction": ["Hi."]}), model="mock")
    assert out["embedding"].list.len().to_list() == [16]


def test_concurrent_rows_of_one_step_share_requests():
    session = Session(model=Model("mock"))

    async def rows() -> list:
        one = [embed_texts(session, "embed", [f"text {i}"], batch_size=4) for i in range(10)]
        return await asyncio.gather(*one)

    outcomes = asyncio.run(rows())
    assert len(outcomes) == 10 and session.totals["calls"] == 3  # 4 + 4 + 2


@given(
    st.lists(st.text(max_size=30), min_size=1, max_size=12),
    st.one_of(st.none(), st.integers(0, 10_000)),
    st.one_of(st.none(), st.floats(0, 1)),
    st.integers(0, 5),
)
def test_usage_shares_add_up_to_the_request(texts, tokens, cost, attempts):
    usage = Usage(input_tokens=tokens, cost_usd=cost, attempts=attempts, latency_s=0.5)
    shares = _shares(usage, texts)
    assert len(shares) == len(texts)
    if tokens is None:
        assert all(s.input_tokens is None for s in shares)
    else:
        assert sum(s.input_tokens for s in shares) == tokens
        assert all(s.input_tokens >= 0 for s in shares)
    if cost is not None:
        assert sum(s.cost_usd for s in shares) == pytest.approx(cost)
    assert sum(s.attempts for s in shares) == attempts and shares[0].attempts == attempts
    assert all(s.latency_s == 0.5 for s in shares)


def test_the_cache_key_is_the_request_not_the_key_or_timeout():
    model = Model("openai/text-embedding-3-small", api_key="sk-one", timeout=5)
    same = Model("openai/text-embedding-3-small", api_key="sk-two", timeout=50)
    assert embedding_key("x", model) == embedding_key("x", same)
    assert embedding_key("x", model) != embedding_key("y", model)
    assert embedding_key("x", model) != embedding_key("x", model, dimensions=64)
    assert embedding_key("x", model) != embedding_key("x", model.replace(api_base="http://h"))
    assert embedding_key("x", model) != embedding_key("x", model.replace(name="openai/other"))


def test_a_finished_runs_session_and_batchers_can_go():
    from promptflow_dsl._engine import _embeddings

    session = Session(model=Model("mock"))
    asyncio.run(embed_texts(session, "embed", ["one", "two"]))
    assert id(session) in _embeddings._batchers
    key = id(session)
    del session
    gc.collect()
    assert key not in _embeddings._batchers
