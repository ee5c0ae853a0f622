"""The count a prompt asks for, enforced where the provider can: through the loopback server."""

import polars as pl
import pytest
from click.testing import CliRunner

from promptflow_dsl import Model, Recipe, explode, self_instruct, text_generation
from promptflow_dsl._io.frames import read_frame, write_frame
from promptflow_dsl.cli import main
from promptflow_dsl.testing import LoopbackServer


def _model(server, **options):
    return Model("openai/test-model", api_base=server.api_base, api_key="sk-test", **options)


@pytest.mark.parametrize("mode", ["tools", "json_schema"])
def test_the_schema_asks_for_the_count(mode):
    with LoopbackServer() as server:
        server.script([{"instructions": ["One?", "Two?", "Three?"]}])
        result = self_instruct("Owls.", model=_model(server, mode=mode), num_instructions=3)
        assert result.instructions == ["One?", "Two?", "Three?"]
        sent = str(server.requests[0].body)
    assert "'minItems': 3" in sent and "'maxItems': 3" in sent


@pytest.mark.parametrize("decoding", ["structured", "text"])
def test_extras_are_cut_and_a_short_list_is_kept(decoding):
    mode = "text" if decoding == "text" else "tools"
    four = ["One?", "Two?", "Three?", "Four?"]
    reply = "\n".join(four) if decoding == "text" else {"instructions": four}
    short = "\n".join(four[:2]) if decoding == "text" else {"instructions": four[:2]}
    with LoopbackServer() as server:
        server.script([reply, short])
        model = _model(server, mode=mode)
        cut = self_instruct("Owls.", model=model, num_instructions=3, cache=False)
        kept = self_instruct("Owls.", model=model, num_instructions=3, cache=False)
    assert cut.instructions == four[:3]
    assert kept.instructions == four[:2]


def test_a_recipe_row_gets_the_count_it_asked_for():
    with LoopbackServer() as server:
        server.script([{"instructions": ["A?", "B?", "C?", "D?", "E?"]}])
        recipe = self_instruct.step(num_instructions=2) >> explode("instructions", into="q")
        out = recipe.run(pl.DataFrame({"input": ["Owls."]}), model=_model(server), cache=False)
    assert out["q"].to_list() == ["A?", "B?"]


@pytest.mark.parametrize("value", ["0", "-2", "x"])
def test_set_checks_the_range_before_any_call(tmp_path, value):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = CliRunner().invoke(
        main,
        [
            "run", str(root / "recipes" / "self_instruct.py"),
            "-i", str(root / "recipes" / "data" / "documents.jsonl"),
            "-o", str(tmp_path / "out.jsonl"),
            "--set", f"self_instruct.num_instructions={value}",
        ],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"--set 'self_instruct.num_instructions={value}': num_instructions must be" in (
        result.output
    )
    assert not (tmp_path / "out.jsonl").exists()


def test_a_short_list_is_recorded_in_the_notes_column_through_later_steps(tmp_path):
    recipe = (
        self_instruct.step(num_instructions=3)
        >> explode("instructions", into="instruction")
        >> text_generation.step()
    )
    frame = pl.DataFrame({"input": ["Short doc.", "Full doc."]})

    def answer(request):
        if "Short doc." in request.text and "tools" in request.body:
            return {"instructions": ["Only one?"]}
        return None

    with LoopbackServer(responder=answer) as server:
        model = Model("openai/x", api_base=server.api_base, api_key="sk-test")
        out = recipe.run(frame, model=model, cache=False)
    short = out.filter(pl.col("input") == "Short doc.")
    assert short.height == 1 and short["error"][0] is None
    assert short["notes"][0].to_list() == ["self_instruct: instructions: short, 1 of the 3 asked"]
    assert out.filter(pl.col("input") == "Full doc.")["notes"].is_null().all()
    # The notes survive a CSV round trip into the next run.
    path = tmp_path / "out.csv"
    write_frame(out, path)
    assert Recipe().run(read_frame(path))["notes"].to_list() == out["notes"].to_list()


@pytest.mark.parametrize("mode", ["tools", "json_schema", "text"])
def test_a_list_cut_to_the_count_says_so_in_the_notes_in_every_mode(mode):
    five = ["A?", "B?", "C?", "D?", "E?"]
    with LoopbackServer() as server:
        server.script(["\n".join(five) if mode == "text" else {"instructions": five}])
        out = self_instruct.step(num_instructions=2).run(
            pl.DataFrame({"input": ["Owls."]}), model=_model(server, mode=mode), cache=False
        )
    assert out["instructions"].to_list() == [["A?", "B?"]]
    assert out["notes"].to_list() == [["self_instruct: instructions: 5 items, cut to the 2 asked"]]
