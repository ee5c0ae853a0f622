"""The Evol family as recipe steps: LiteLLM and Instructor over HTTP to the loopback server,
in text and structured modes, and the offline model."""

import polars as pl
import pytest

from promptflow_dsl import Model, evol_complexity, evol_quality, rename, text_generation
from promptflow_dsl.testing import LoopbackServer

ROWS = pl.DataFrame(
    {
        "instruction": ["Sort a list.", "Why do tides happen?", "Name a prime number."],
        "response": ["Use sorted().", "The moon pulls the sea.", "7 is prime."],
    }
)
MODES = {"text": {}, "structured": {"mode": "json_schema"}}


def model_at(server: LoopbackServer, **options) -> Model:
    return Model("openai/loopback-model", api_base=server.api_base, api_key="sk-test", **options)


def given_text(request_text: str, label: str, until: str | None = None) -> str:
    """The text a rewriting prompt carries after *label* (up to *until*)."""
    after = request_text.split(f"{label}:\n", 1)[1]
    return after.split(f"\n\n{until}:\n", 1)[0] if until else after


@pytest.mark.parametrize("mode", MODES)
def test_evol_complexity_step_evolves_in_depth_round_after_round(mode):
    with LoopbackServer() as server:
        step = evol_complexity.step(num_evolutions=2)
        out = step.run(ROWS, model=model_at(server, **MODES[mode]), cache=False)
        requests = server.requests
    assert out["error"].is_null().all()
    assert len(requests) == 2 * ROWS.height  # one rewrite per round and row
    assert all(r.text.startswith("You make prompts harder.") for r in requests)
    assert out["mutations"].list.len().to_list() == [2] * ROWS.height
    if mode == "structured":
        assert all(r.body["response_format"]["type"] == "json_schema" for r in requests)
    # round 2 rewrote what round 1 returned, and the row keeps what round 2 returned
    given = {given_text(r.text, "Given prompt") for r in requests}
    for row in out.to_dicts():
        assert row["instruction"] in given and row["evolved_instruction"] not in given
        assert row["evolved_instruction"] != row["instruction"]
    assert len(given) == 2 * ROWS.height


@pytest.mark.parametrize("mode", MODES)
def test_evol_quality_step_evolves_the_response_round_after_round(mode):
    with LoopbackServer() as server:
        step = evol_quality.step(num_evolutions=2, store_evolutions=True)
        out = step.run(ROWS, model=model_at(server, **MODES[mode]), cache=False)
        requests = server.requests
    assert out["error"].is_null().all()
    assert len(requests) == 2 * ROWS.height
    assert all(r.text.startswith("You improve answers.") for r in requests)
    if mode == "structured":
        schema = requests[0].body["response_format"]["json_schema"]
        assert "rewritten_response" in schema["schema"]["properties"]
    for row in out.to_dicts():
        first, second = row["evolved_responses"]
        prompts = [
            r.text
            for r in requests
            if given_text(r.text, "Given prompt", "Given response") == row["instruction"]
        ]
        assert [given_text(p, "Given response") for p in prompts] == [row["response"], first]
        assert second != first and len(row["mutations"]) == 2


def test_evol_quality_elimination_over_http_rewrites_the_previous_response_again():
    replies = iter(
        [
            "Rewritten response: the moon  pulls the SEA.",  # unchanged but for case and spacing
            "#Rewritten Response#:\nThe moon's pull raises two bulges of sea: two tides a day.",
        ]
    )
    with LoopbackServer(responder=lambda request: next(replies)) as server:
        step = evol_quality.step(num_evolutions=2, eliminate=True)
        (row,) = step.run(ROWS[1], model=model_at(server), cache=False).to_dicts()
        texts = [r.text for r in server.requests]
    assert row["eliminations"] == ["unchanged", None]
    assert row["evolved_response"] == "The moon's pull raises two bulges of sea: two tides a day."
    assert [given_text(t, "Given response") for t in texts] == ["The moon pulls the sea."] * 2


def test_the_choices_do_not_depend_on_concurrency_over_http():
    frame = pl.concat([ROWS] * 4).with_columns(
        pl.format("{} ({})", "instruction", pl.int_range(pl.len())).alias("instruction")
    )
    recipe = (
        evol_complexity.step(num_evolutions=2, seed=9)
        >> rename(mutations="complexity_mutations", eliminations="complexity_eliminations")
        >> evol_quality.step(num_evolutions=2, seed=9)
    )
    runs = []
    for limit in (1, 12):
        with LoopbackServer(latency=lambda r: r.uniform(0, 0.03)) as server:
            runs.append(
                recipe.run(frame, model=model_at(server), max_concurrency=limit, cache=False)
            )
    for column in ("complexity_mutations", "mutations"):
        assert runs[0][column].to_list() == runs[1][column].to_list()


def family_recipe():
    return (
        evol_complexity.step(num_evolutions=2)
        >> rename(mutations="complexity_mutations", eliminations="complexity_eliminations")
        >> text_generation.step(inputs={"instruction": "evolved_instruction"})
        >> evol_quality.step(
            num_evolutions=2,
            inputs={"instruction": "evolved_instruction", "response": "generation"},
        )
    )


@pytest.mark.parametrize("where", ["offline", "text", "structured"])
def test_a_recipe_of_the_whole_family(where):
    frame = ROWS.select("instruction")
    if where == "offline":
        out = family_recipe().run(frame, model="mock", cache=False)
        calls = None
    else:
        with LoopbackServer() as server:
            out = family_recipe().run(frame, model=model_at(server, **MODES[where]), cache=False)
            calls = server.stats.requests
    assert out["error"].is_null().all()
    assert out.columns[:8] == [
        "instruction",
        "evolved_instruction",
        "complexity_mutations",
        "complexity_eliminations",
        "generation",
        "evolved_response",
        "mutations",
        "eliminations",
    ]
    assert out["evolved_response"].is_not_null().all()
    assert calls in (None, 5 * ROWS.height)  # two evolutions, an answer, two rewrites
