"""Classification identification, instance generation and the export formats."""

import polars as pl
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from promptflow_dsl import (
    Instance,
    Instances,
    generate_instances,
    identify_classification,
    to_training_format,
)
from promptflow_dsl.techniques.generate_instances import format_instances, parse_instances


def test_identification_prompt_and_reading():
    prompt = identify_classification.render("Sort the list.", examples=[("Is it red?", True)])
    assert prompt == (
        "Can the following task be regarded as a classification task with finite output labels?\n\n"
        "Task: Is it red?\nIs it classification? Yes\n\nTask: Sort the list.\nIs it classification?"
    )
    program = identify_classification.program("x")
    assert dict(program.params) == {"temperature": 0, "max_tokens": 3, "stop": ["\n", "Task"]}
    assert [
        identify_classification.parse(t).is_classification
        for t in (" Yes", "YES\n", "yes", "Yes.", "No", "")
    ] == [True, True, True, False, False, False]


def test_instance_prompts_are_input_first_or_output_first():
    assert generate_instances.render("Add the numbers.").endswith("Task: Add the numbers.\n")
    assert "Example 1\nInput:" in generate_instances.render("Add the numbers.")
    clf = generate_instances.render("Is it spam?", True)
    assert clf.startswith("Given the classification task definition and the class labels")
    assert "Class label:" in clf
    params = generate_instances.program("x").params
    assert (
        params["temperature"] == 0
        and params["presence_penalty"] == 1.5
        and params["stop"] == ["Example 6", "Task:"]
    )


@pytest.mark.parametrize(
    ("text", "classification", "truncated", "expected"),
    [
        (
            "Example 1\nInput: 2, 3\nOutput: 5\n\nExample 2\nInput: 1, 1\nOutput: 2",
            False,
            False,
            [("2, 3", "5"), ("1, 1", "2")],
        ),
        (
            "Output: Ten tips for sleeping well.",
            False,
            False,
            [("", "Ten tips for sleeping well.")],
        ),
        ("Input: 4\nOutput: 16\nInput: 5\nOutput: 25", False, False, [("4", "16")]),
        (
            "Example 1\nInput: 2\nOutput: 4\nExample 2\nInput: 3\nOutput: 9",
            False,
            True,
            [("2", "4")],
        ),
        (
            "Example 1\nInput: same\nOutput: same\nExample 2\nInput: a:\nOutput: b\nExample 3\nInput: c\nOutput:",
            False,
            False,
            [],
        ),
        ("Example 1\nInput: a\nOutput: b\nExample 2\nInput: a\nOutput: c", False, False, []),
        (
            "Example 1\nInput: a\nOutput: b\nExample 2\nInput: a\nOutput: b",
            False,
            False,
            [("a", "b")],
        ),
        ("nothing useful", False, False, []),
        (
            "Class label: Spam\nWin a prize now!\nClass label: Not spam\nLunch at noon?",
            True,
            False,
            [("Win a prize now!", "Spam"), ("Lunch at noon?", "Not spam")],
        ),
        ("Class label: Even", True, False, [("", "Even")]),
        ("no label here", True, False, []),
    ],
)
def test_instance_parsing(text, classification, truncated, expected):
    parsed = parse_instances(text, classification=classification, truncated=truncated)
    assert [(i.input, i.output) for i in parsed.instances] == expected


field = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=1, max_size=12
)


@given(st.lists(st.tuples(field, field), max_size=5, unique_by=lambda p: p[0]), st.booleans())
def test_round_trip(pairs, classification):
    # The format's own words mark its pieces (the paper splits on "Example" anywhere), so a
    # field cannot hold them; the list comes from the format, not from the parser.
    reserved = ("Example", "Input", "Output", "Class label")
    assume(not any(word in text for pair in pairs for text in pair for word in reserved))
    pairs = [(i, o) for i, o in pairs if i != o]
    result = Instances(instances=[Instance(input=i, output=o) for i, o in pairs])
    assert (
        parse_instances(
            format_instances(result, classification=classification), classification=classification
        )
        == result
    )


@given(st.text(), st.booleans(), st.booleans())
def test_any_text_parses_and_survivors_pass_the_filters(text, classification, truncated):
    for x in parse_instances(text, classification=classification, truncated=truncated).instances:
        assert (
            x.output
            and x.input != x.output
            and not x.output.endswith(":")
            and not x.input.endswith(":")
        )


ROWS = pl.DataFrame(
    {
        "instruction": ["Add the numbers.", "Name a colour."],
        "input": ["2, 3", ""],
        "output": ["5", "Blue"],
    }
)


def test_export_formats():
    paper = to_training_format(input="input").run(ROWS).to_dicts()
    assert paper == [
        {"prompt": "Add the numbers.\n\n2, 3\n\n", "completion": "5<|endoftext|>"},
        {"prompt": "Name a colour.\n\n", "completion": "Blue<|endoftext|>"},
    ]
    chat = to_training_format("chat", input="input", system_prompt="Be brief.").run(ROWS)
    chat = chat["messages"].to_list()
    assert chat[0] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Add the numbers.\n\n2, 3"},
        {"role": "assistant", "content": "5"},
    ]
    assert to_training_format("alpaca").run(ROWS).columns == ["instruction", "input", "output"]
    assert to_training_format("alpaca").run(ROWS)["input"].to_list() == ["", ""]  # not mapped
    with pytest.raises(ValueError, match="style must be one of"):
        to_training_format("sharegpt")


# The headers as written in the paper's code (yizhongw/self-instruct,
# self_instruct/templates/instance_gen_template.py and clf_task_template.py), byte for byte.
PAPER_GENERATION_HEADER = (
    "Come up with examples for the following tasks. Try to generate multiple examples when "
    "possible. If the task doesn't require additional input, you can generate the output "
    "directly.\n\n"
)
PAPER_CLASSIFICATION_HEADER = (
    "Given the classification task definition and the class labels, generate an input that "
    "corresponds to each of the class labels. If the task doesn't require input, just "
    "generate possible class labels.\n\n"
)
PAPER_IDENTIFY_HEADER = (
    "Can the following task be regarded as a classification task with finite output labels?\n\n"
)


@pytest.mark.parametrize(
    ("classification", "header"),
    [(False, PAPER_GENERATION_HEADER), (True, PAPER_CLASSIFICATION_HEADER)],
)
def test_instance_headers_are_the_papers(classification, header):
    prompt = generate_instances.render("Sort the list.", classification, examples="")
    assert prompt == f"{header}Task: Sort the list.\n"


def test_identification_header_is_the_papers():
    prompt = identify_classification.render("Sort the list.", examples=[])
    assert prompt == f"{PAPER_IDENTIFY_HEADER}Task: Sort the list.\nIs it classification?"


SELF_INSTRUCT_OUTPUT = pl.DataFrame(
    {
        "input": ["Owls hunt at night. They hear very well."],
        "instruction": ["Why do owls hunt at night?"],
        "generation": ["Their prey is active then."],
        "model_name": ["mock"],
    }
)


@pytest.mark.parametrize("style", ["prompt_completion", "chat", "alpaca"])
def test_export_reads_only_the_mapped_columns_of_the_bundled_output(style):
    from promptflow_dsl import rename

    mapped = to_training_format(style, output="generation").run(SELF_INSTRUCT_OUTPUT)
    renamed = (rename(generation="output") >> to_training_format(style)).run(SELF_INSTRUCT_OUTPUT)
    for out in (mapped, renamed):
        text = str(out.to_dicts())
        assert "Why do owls hunt at night?" in text and "Their prey is active then." in text
        assert "Owls hunt at night. They" not in text  # the document was never mapped


def test_export_of_the_bundled_self_instruct_recipe_offline():
    import runpy
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    recipe = runpy.run_path(str(root / "recipes" / "self_instruct.py"))["recipe"]
    documents = pl.read_ndjson(root / "recipes" / "data" / "documents.jsonl").head(1)
    out = (recipe >> to_training_format("chat", output="generation")).run(documents, model="mock")
    users = [m[0]["content"] for m in out["messages"].to_list()]
    assert users and all(documents["input"][0] not in user for user in users)
