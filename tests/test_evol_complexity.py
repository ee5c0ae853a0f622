import polars as pl
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from promptflow_dsl import (
    AttributeValueError,
    EvolvedInstruction,
    Model,
    ParseError,
    evol_complexity,
    evol_instruct,
)
from promptflow_dsl.techniques._evolution import choose_mutation
from promptflow_dsl.techniques.evol_complexity import MUTATION_TEMPLATES
from promptflow_dsl.techniques.evol_instruct import MUTATION_TEMPLATES as EVOL_INSTRUCT
from promptflow_dsl.testing import LoopbackServer

IN_DEPTH = {"add_constraints", "deepen", "concretize", "increase_reasoning"}

# An evolved instruction as models write one: an ordinary opening word, then anything.
OPENING_WORDS = ["Sort", "Explain", "Write", "Why", "How", "List", "Compare", "3D"]
instructions = st.builds(
    lambda word, rest: (word + rest).strip(), st.sampled_from(OPENING_WORDS), st.text()
)


def run(technique, instruction, replies, **attributes):
    """What a run sends, each program answered with the next reply, and its result."""
    sequence = technique.sequence(instruction, **attributes)
    sent = [next(sequence)]
    for reply in replies:
        try:
            sent.append(sequence.send(sent[-1].parse(reply)))
        except StopIteration as done:
            requests = [(p.result_type, p.render(), p.decoding, dict(p.params)) for p in sent]
            return requests, done.value
    message = "the run asked for more replies than the test gave"
    raise AssertionError(message)


def test_the_mutations_are_evol_instructs_in_depth_ones_and_never_breadth():
    assert set(MUTATION_TEMPLATES) == IN_DEPTH
    for name, template in MUTATION_TEMPLATES.items():
        assert template == EVOL_INSTRUCT[name]
    picks = {
        choose_mutation(MUTATION_TEMPLATES, seed=1, instruction=f"Task {i}", round=r)
        for i in range(40)
        for r in range(3)
    }
    assert picks == IN_DEPTH


def test_a_run_is_evol_instruct_with_the_in_depth_templates():
    replies = ["Sort 10 numbers.", "Not Equal", "Use merge sort.", "Sort 10 numbers in place."]
    replies += ["Not Equal", "Use insertion sort.", "Sorted."]
    attributes = {"num_evolutions": 2, "eliminate": True, "seed": 5, "generate_answers": True}
    ours = run(evol_complexity, "Sort a list.", replies, **attributes)
    theirs = run(
        evol_instruct, "Sort a list.", replies, mutation_templates=MUTATION_TEMPLATES, **attributes
    )
    assert ours == theirs  # the same prompts, so the same cache entries
    assert len(ours[0]) == 6 and ours[1].answer == "Use insertion sort."


@given(instructions, st.integers(0, 2**32), st.integers(1, 6))
def test_the_same_seed_and_instruction_give_the_same_mutations(instruction, seed, rounds):
    def mutations():
        replies = ["Sort ten numbers."] * rounds
        return run(evol_complexity, instruction, replies, num_evolutions=rounds, seed=seed)[
            1
        ].mutations

    first = mutations()
    note(repr(first))
    assert first == mutations() and len(first) == rounds and set(first) <= IN_DEPTH
    assert first == [
        choose_mutation(MUTATION_TEMPLATES, seed=seed, instruction=instruction, round=r)
        for r in range(rounds)
    ]


def test_the_row_position_does_not_change_the_mutations():
    frame = pl.DataFrame({"instruction": [f"Explain topic {i}." for i in range(24)]})
    step = evol_complexity.step(num_evolutions=3, seed=11)
    forward = step.run(frame, model="mock", max_concurrency=24)["mutations"].to_list()
    backward = step.run(frame.reverse(), model="mock", max_concurrency=1)["mutations"]
    chunked = pl.concat([step.run(frame[:5], model="mock"), step.run(frame[5:], model="mock")])
    assert backward.to_list() == forward[::-1]
    assert chunked["mutations"].to_list() == forward
    other_seed = evol_complexity.step(num_evolutions=3, seed=12).run(frame, model="mock")
    assert other_seed["mutations"].to_list() != forward


HEADERS = ["", "#Rewritten Prompt#:\n", "Rewritten Prompt: ", "**Rewritten Prompt:**\n"]


@given(instructions, st.sampled_from(HEADERS))
def test_round_trip(instruction, header):
    result = EvolvedInstruction(evolved_instruction=instruction)
    text = header + evol_complexity.format(result)
    note(repr(text))
    assert evol_complexity.parse(text) == result


@given(st.text())
def test_any_text_parses_or_raises_parse_error(text):
    try:
        result = evol_complexity.parse(text)
    except ParseError as exc:
        assert exc.raw_text == text
    else:
        assert result.evolved_instruction == result.evolved_instruction.strip() != ""


def test_output_columns_follow_the_attributes():
    assert evol_complexity.step().contract.adds[:3] == (
        "evolved_instruction",
        "mutations",
        "eliminations",
    )
    plural = evol_complexity.step(store_evolutions=True, generate_answers=True)
    assert plural.contract.adds[:2] == ("evolved_instructions", "answers")
    out = plural.run(pl.DataFrame({"instruction": ["Sort a list."]}), model="mock")
    assert out.schema["evolved_instructions"] == pl.List(pl.String)
    assert out["answers"].list.len().to_list() == [1]


def test_deitas_variants_are_the_original_and_each_evolution():
    step = evol_complexity.step(
        num_evolutions=5, store_evolutions=True, include_original_instruction=True
    )
    (row,) = step.run(pl.DataFrame({"instruction": ["Sort a list."]}), model="mock").to_dicts()
    assert len(row["evolved_instructions"]) == 6 and row["evolved_instructions"][0] == (
        "Sort a list."
    )
    assert len(row["mutations"]) == 5 and set(row["mutations"]) <= IN_DEPTH


def test_a_bad_attribute_fails_when_the_step_is_built():
    with pytest.raises(AttributeValueError, match="num_evolutions"):
        evol_complexity.step(num_evolutions=0)


@pytest.mark.parametrize(
    ("replies", "eliminations", "kept"),
    [
        (["Rewrite the given prompt: sort.", "Sort ten numbers."], ["copied_rewriting_prompt"], 0),
        (["Sort ten numbers.", "Equal"], ["no_information_gain"], 0),
        (["Sort ten numbers.", "Not Equal", "Sorry, I can't."], ["answer_is_apology"], 0),
        (["Sort ten numbers.", "Not Equal", "Use merge sort."], [None], 1),
    ],
)
def test_elimination_is_evol_instructs(replies, eliminations, kept):
    queue = iter(replies)
    with LoopbackServer(responder=lambda request: next(queue)) as server:
        model = Model("openai/judge", api_base=server.api_base, api_key="sk-test")
        result = evol_complexity(
            "Sort a list.", eliminate=True, store_evolutions=True, model=model, cache=False
        )
    assert result.eliminations == eliminations
    assert result.evolved_instructions == ["Sort ten numbers."][:kept]
    assert result.evolved_instruction == ("Sort ten numbers." if kept else "Sort a list.")
