"""The Self-Instruct bootstrap: prompt, parser, sampling, loop."""

import json
import re
import runpy
import string
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptflow_dsl import Model, NewInstructions, bootstrap_instructions, sample_bootstrap_prompts
from promptflow_dsl._io.recipes import load_recipe
from promptflow_dsl._recipe._frame_steps import PAPER_BLOCKED_WORDS
from promptflow_dsl.techniques.bootstrap_instructions import (
    PAPER_PARAMS,
    format_new_instructions,
    parse_new_instructions,
)

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "self_instruct_seed_tasks.jsonl"
ROOT = Path(__file__).resolve().parents[1]


def paper_seed_instructions() -> list[str]:
    if not SEEDS.exists():
        pytest.skip("the paper's seed tasks are not beside the project")
    return [
        json.loads(line)["instruction"] for line in SEEDS.read_text().splitlines() if line.strip()
    ]


def test_prompt_is_the_paper_format_byte_for_byte():
    eight = paper_seed_instructions()[:8]
    expected = "Come up with a series of tasks:\n"
    for i, text in enumerate(eight, 1):
        cleaned = re.sub(r"\s+", " ", text).strip().rstrip(":")
        expected += f"{i}. {cleaned}\n"
    expected += "9."
    assert bootstrap_instructions.render(eight) == expected
    classification = bootstrap_instructions.render(eight, classification=True)
    assert classification.startswith(
        "Come up with a series of classification tasks. Try to specify the possible output labels when possible.\n1. "
    )


def test_request_uses_the_paper_decoding_defaults():
    program = bootstrap_instructions.program(["a b c d"])
    assert program.is_raw and dict(program.params) == PAPER_PARAMS
    assert PAPER_PARAMS["stop"] == ["\n\n", "\n16", "16.", "16 ."]


REPLY = (
    " Give me five famous cities in California.\n"
    "10. Draw a map of the city.\n"
    "11 . Tell me why the sky is blue.\n"
    "12. Hi there.\n"
    "13. Write a program that sorts numbers in place.\n"
    '14. "Quote" this sentence for me please.\n'
    "15. ¿Cómo se dice hello en francés hoy?\n"
    "16. Find the files that mention taxes.\n"
    "17. Explain how   a plane\n  stays in the air."
)


def test_parser_applies_the_paper_filters_and_fixes_capitalisation_by_default():
    assert parse_new_instructions(REPLY).new_instructions == [
        "Give me five famous cities in California.",
        "Tell me why the sky is blue.",
        "Explain how a plane stays in the air.",
    ]
    faithful = bootstrap_instructions.parse(REPLY, faithful=True).new_instructions
    assert faithful[0] == "Give me five famous cities in california."  # the paper's str.capitalize


def test_a_truncated_reply_yields_nothing():
    assert parse_new_instructions(REPLY, truncated=True).new_instructions == []


# Every word the paper blocks, and "Write a program", has an a, an e or an o: instructions
# written without them are ones the filters keep, whatever the parser does.
KEPT_LETTERS = "".join(sorted(set(string.ascii_lowercase) - set("aeo")))
words = st.text(alphabet=KEPT_LETTERS, min_size=2, max_size=8)
instruction = (
    st.lists(words, min_size=4, max_size=12).map(" ".join).map(lambda s: s[0].upper() + s[1:])
)


def test_the_kept_letters_spell_no_blocked_word():
    assert all(set(word) - set(KEPT_LETTERS) for word in (*PAPER_BLOCKED_WORDS, "write a program"))


@given(st.lists(instruction, min_size=1, max_size=8))
def test_round_trip(items):
    result = NewInstructions(new_instructions=items)
    assert parse_new_instructions(format_new_instructions(result)) == result


@given(st.text(), st.booleans())
def test_any_text_parses_and_every_item_passes_the_filters(text, faithful):
    items = parse_new_instructions(text, faithful=faithful).new_instructions
    assert all(3 < len(i.split()) <= 150 and i == i.strip() and "\n" not in i for i in items)
    assert (
        parse_new_instructions(
            format_new_instructions(NewInstructions(new_instructions=items)), faithful=faithful
        ).new_instructions
        == items
    )


def pool(seeds: int, machine: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "instruction": [f"Seed task {i}." for i in range(seeds)]
            + [f"Machine task {i}." for i in range(machine)],
            "origin": ["seed"] * seeds + ["machine"] * machine,
        }
    )


def test_sampling_takes_up_to_two_machine_tasks_and_is_seeded():
    prompts = sample_bootstrap_prompts(20).run(pool(10, 5))["instructions"].to_list()
    assert all(len(p) == 8 and len(set(p)) == 8 for p in prompts)
    assert all(sum(t.startswith("Machine") for t in p) == 2 for p in prompts)
    assert prompts == sample_bootstrap_prompts(20).run(pool(10, 5))["instructions"].to_list()
    assert (
        prompts != sample_bootstrap_prompts(20, seed=1).run(pool(10, 5))["instructions"].to_list()
    )
    first = sample_bootstrap_prompts(3).run(pool(10, 0))["instructions"].to_list()
    assert all(sum(t.startswith("Seed") for t in p) == 8 for p in first)


def test_too_few_seeds_is_a_clear_error():
    with pytest.raises(Exception, match="needs at least 8 seed tasks, found 3"):
        sample_bootstrap_prompts(1).run(pool(3, 0))


RECIPE_FILE = ROOT / "recipes" / "self_instruct_bootstrap.py"


def test_bootstrap_loop_offline_reaches_its_target():
    bootstrap = runpy.run_path(str(RECIPE_FILE))["bootstrap"]
    seeds = pl.read_ndjson(ROOT / "recipes" / "data" / "seed_tasks.jsonl")
    out = bootstrap.run(seeds, model="mock")
    machine = out.filter(pl.col("origin") == "machine")
    assert machine.height >= 40 and machine["avg_similarity_score"].is_not_null().all()
    assert out.filter(pl.col("origin") == "seed").height == seeds.height
    assert machine["instruction"].n_unique() == machine.height


def test_bootstrap_recipe_through_the_completions_endpoint_and_resumes_from_the_cache(
    loopback_server, tmp_path
):
    recipe = load_recipe(ROOT / "recipes" / "self_instruct_bootstrap.py")
    seeds = pl.read_ndjson(ROOT / "recipes" / "data" / "seed_tasks.jsonl")
    model = Model(
        "text-completion-openai/base-model", api_base=loopback_server.api_base, api_key="sk-test"
    )
    first = recipe.run(seeds, model=model, cache=tmp_path / "c.sqlite")
    calls = loopback_server.stats.requests
    assert calls > 0 and {r.endpoint for r in loopback_server.requests} == {"completions"}
    assert (
        loopback_server.requests[0]
        .body["prompt"]
        .startswith("Come up with a series of tasks:\n1. ")
    )
    assert loopback_server.requests[0].body["presence_penalty"] == 2
    prompts = [r.body["prompt"] for r in loopback_server.requests]
    assert any(
        p.startswith("Can the following task be regarded as a classification task") for p in prompts
    )
    assert any(p.startswith("Come up with examples for the following tasks.") for p in prompts)
    again = recipe.run(seeds, model=model, cache=tmp_path / "c.sqlite")
    assert loopback_server.stats.requests == calls  # every call came from the cache
    assert again.equals(first)


@given(
    st.lists(
        st.sampled_from("Explain the map of go to files a plotting draw image x y z".split()),
        min_size=1,
        max_size=8,
    )
)
def test_filter_steps_agree_with_the_parser(words):
    from promptflow_dsl import filter_keywords, filter_length

    text = "Explain " + " ".join(words) + "."
    kept_by_steps = (filter_length() >> filter_keywords()).run(
        pl.DataFrame({"instruction": [text]})
    ).height == 1
    assert kept_by_steps == (parse_new_instructions(" " + text).new_instructions == [text])
