"""The engine session: one per run, owning every call; steps map rows and columns."""

import subprocess
import sys
import textwrap

import polars as pl
import pytest

import promptflow_dsl
from promptflow_dsl import (
    FrameStep,
    Generation,
    Model,
    ModelSettingError,
    Session,
    explode,
    rename,
    technique,
    text_generation,
)
from promptflow_dsl._engine import _cache
from promptflow_dsl.testing import LoopbackServer


def test_a_recipe_of_frame_steps_starts_no_thread_and_runs_inside_a_running_loop():
    script = textwrap.dedent(
        """
        import asyncio, threading
        import polars as pl
        from promptflow_dsl import explode, rename

        recipe = rename(text="document") >> explode("tags", into="tag")
        frame = pl.DataFrame({"text": ["a"], "tags": [["x", "y"]]})

        async def in_a_notebook():
            return recipe.run(frame)

        assert asyncio.run(in_a_notebook()).height == 2
        assert recipe.run(frame)["tag"].to_list() == ["x", "y"]
        print(sorted(t.name for t in threading.enumerate()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "['MainThread']", done.stdout + done.stderr


def test_a_frame_step_is_a_plain_function_of_a_frame():
    step = explode("xs", into="x")
    assert isinstance(step, FrameStep)
    out = step.transform(pl.DataFrame({"xs": [[1, 2], [3]]}))
    assert out["x"].to_list() == [1, 2, 3]
    assert rename(x="y").transform(out).columns == ["y"]


def test_a_multi_call_technique_is_built_once_per_row():
    built = []

    @technique(result=Generation)
    def answer_twice(instruction: str):
        built.append(instruction)
        first = yield text_generation.program(instruction)
        return (yield text_generation.program(f"Improve: {first.generation}"))

    frame = pl.DataFrame({"instruction": ["One?", "Two?", "Three?"]})
    out = answer_twice.step().run(frame, model="mock")
    assert out["error"].null_count() == 3 and out["generation"].null_count() == 0
    assert sorted(built) == ["One?", "Three?", "Two?"]  # once each, not twice


def test_the_cache_key_is_computed_once_per_call(tmp_path, monkeypatch):
    counted = []
    original = _cache.cache_key

    def counting(*args, **kwargs):
        counted.append(1)
        return original(*args, **kwargs)

    for module in list(sys.modules.values()):  # wherever the function is bound
        if module and module.__name__.startswith("promptflow_dsl"):
            if getattr(module, "cache_key", None) is original:
                monkeypatch.setattr(module, "cache_key", counting)
    frame = pl.DataFrame({"instruction": ["Same?", "Same?", "Other?", "Third?"]})
    with LoopbackServer() as server:
        model = Model("openai/loopback", api_base=server.api_base, api_key="sk-test")
        out = text_generation.step().run(frame, model=model, cache=tmp_path / "c.sqlite")
        assert server.stats.requests == 4  # the repeated prompt is a second sample
    assert out["error"].null_count() == 4
    # one key per call, plus the repeated prompt's sample-0 key that numbered it
    assert len(counted) == 5


def test_a_step_without_a_model_fails_before_any_call_naming_the_step():
    frame = pl.DataFrame({"instruction": ["Hi?"]})
    with pytest.raises(ModelSettingError, match="step 'text_generation' has no model"):
        text_generation.step().run(frame)


def test_a_custom_step_maps_rows_through_the_session():
    """What a user needs to write a model step of their own is exported."""

    async def answer_each(frame: pl.DataFrame, session: Session) -> list:
        rows = [text_generation.sequence(q) for q in frame["q"]]
        return await session.map("answer", rows, model=Model("mock"))

    import asyncio

    session = Session()
    outcomes = asyncio.run(answer_each(pl.DataFrame({"q": ["A?", "B?"]}), session))
    assert [type(o).__name__ for o in outcomes] == ["Completion", "Completion"]
    assert session.totals["calls"] == 2
    assert "Session" in promptflow_dsl.__all__ and "FrameStep" in promptflow_dsl.__all__
