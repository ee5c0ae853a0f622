"""The command's inputs and outputs: --set, standard input and output, datasets folders, cards."""

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from promptflow_dsl._errors import PromptflowError
from promptflow_dsl._io.frames import read_frame
from promptflow_dsl._recipe._llm_step import error_dtype
from promptflow_dsl._recipe._overrides import apply_overrides
from promptflow_dsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "self_instruct.py"
BOOTSTRAP = ROOT / "recipes" / "self_instruct_bootstrap.py"
DOCUMENTS = ROOT / "recipes" / "data" / "documents.jsonl"


def _run(*args, **kwargs):
    return CliRunner().invoke(main, ["run", *map(str, args)], **kwargs)


def test_set_overrides_attributes_and_models_and_is_recorded(
    loopback_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out = tmp_path / "out.parquet"
    result = _run(
        RECIPE, "-i", DOCUMENTS, "-o", out, "--limit", "2",
        "--set", "self_instruct.num_instructions=5",
        "--set", "text_generation.model=openai/loopback",
        "--set", f"text_generation.model.api_base={loopback_server.api_base}",
        "--set", "text_generation.model.temperature=0.25",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(out)
    assert set(frame["model_name"]) == {"openai/loopback"}  # every response came over HTTP
    bodies = [r.body for r in loopback_server.requests]
    assert len(bodies) == frame.height and {b["temperature"] for b in bodies} == {0.25}
    record = json.loads(CliRunner().invoke(main, ["show", str(out)]).output)
    assert record["recipe"]["overrides"][0] == "self_instruct.num_instructions=5"
    assert record["steps"][0]["attributes"] == {"num_instructions": 5}
    assert record["steps"][2]["model"] == "openai/loopback"


def test_set_reaches_steps_inside_loops_and_checks_types():
    import runpy

    recipe = runpy.run_path(str(BOOTSTRAP))["recipe"]
    changed = apply_overrides(recipe, ["dedup_rouge_l.threshold=0.5", "repeat_until.max_rounds=2"])
    loop = next(s for s in changed.steps if s.name == "repeat_until")
    assert loop.max_rounds == 2
    dedup = [s for s in _walk(changed) if s.name == "dedup_rouge_l"]
    assert dedup and all(s.threshold == 0.5 for s in dedup)
    with pytest.raises(PromptflowError, match="valid number"):
        apply_overrides(recipe, ["dedup_rouge_l.threshold=high"])
    with pytest.raises(PromptflowError, match="predicate cannot be set from the command line"):
        apply_overrides(recipe, ["filter.predicate=1"])
    described = apply_overrides(recipe, ["generate_instances.model.max_tokens=64"])
    assert [s.model.max_tokens for s in _walk(described) if s.name == "generate_instances"] == [64]


def test_set_reads_json_that_was_meant_as_text():
    from promptflow_dsl import self_instruct

    step = apply_overrides(self_instruct.step(), ["self_instruct.application_description=2024"])
    assert step.steps[0].attributes["application_description"] == "2024"


def _walk(recipe):
    for step in recipe.steps:
        yield step
        if hasattr(step, "body"):
            yield from _walk(step.body)


@pytest.mark.parametrize(
    ("assignment", "says"),
    [
        ("self_instruct.bogus=1", "has no attribute 'bogus'; it has application_description"),
        ("nowhere.x=1", "the recipe has no step 'nowhere'; its steps are explode"),
        ("self_instruct", "write STEP.ATTRIBUTE=VALUE"),
        ("text_generation.model.api_key=sk-123", "keys and credentials stay out of command lines"),
        ('text_generation.model.params={"api_key": "sk-123"}', "stay out of command lines"),
        ("text_generation.model.api_base=http://me:sk-123@host/v1", "stay out of command lines"),
        ("self_instruct.num_instructions=many", "valid integer"),
        ("explode.column=nothing_here", "needs column 'nothing_here'"),
    ],
)
def test_a_bad_set_is_one_clear_line_before_any_call(tmp_path, assignment, says):
    result = _run(RECIPE, "-i", DOCUMENTS, "-o", tmp_path / "o.parquet", "--set", assignment)
    assert result.exit_code == 1 and says in result.output, result.output
    assert "Traceback" not in result.output and "sk-123" not in result.output
    assert not (tmp_path / "o.parquet").exists() and not (tmp_path / "o.parquet.parts").exists()


def test_recipe_overrides_change_the_resume_fingerprint(tmp_path):
    out = tmp_path / "o.jsonl"
    assert _run(RECIPE, "-i", DOCUMENTS, "-o", out, "--limit", "2").exit_code == 0
    first = out.read_text()
    template = "text_generation.template=Briefly: {{ instruction }}"
    again = _run(RECIPE, "-i", DOCUMENTS, "-o", out, "--limit", "2", "--set", template)
    assert again.exit_code == 0 and out.read_text() != first  # not the earlier run's parts
    before = [json.loads(line) for line in first.splitlines()]
    after = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["instruction"] for r in after] == [r["instruction"] for r in before]
    assert all(a["generation"] != b["generation"] for a, b in zip(after, before, strict=True))


def test_standard_input_and_output_as_json_lines():
    rows = DOCUMENTS.read_text().splitlines()[:2]
    result = _run(RECIPE, "-i", "-", "-o", "-", input="\n".join(rows) + "\n")
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert out and {row["input"] for row in out} == {json.loads(r)["input"] for r in rows}
    assert "wrote" in result.stderr and "wrote" not in result.stdout


def test_dry_run_reads_standard_input():
    result = _run(RECIPE, "-i", "-", "-o", "x.jsonl", "--dry-run", input=DOCUMENTS.read_text())
    assert result.exit_code == 0, result.output
    assert "self_instruct" in result.output and not Path("x.jsonl").exists()


datasets = pytest.importorskip("datasets")


def test_datasets_folder_out_and_back_in_with_a_card(tmp_path):
    folder = tmp_path / "generated"
    assert _run(RECIPE, "-i", DOCUMENTS, "-o", folder, "--limit", "3").exit_code == 0
    dataset = datasets.load_from_disk(str(folder))
    assert {"input", "instruction", "generation"} <= set(dataset.column_names)
    assert len({row["input"] for row in dataset}) == 3
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "size_categories:\n- n<1K" in card
    assert "arXiv 2212.10560" in card and "`mock`" in card and "| rows in | 3 |" in card
    assert "self_instruct.step(num_instructions=3)" in card  # the recipe's source
    shown = json.loads(CliRunner().invoke(main, ["show", str(folder)]).output)
    assert shown["totals"]["rows_in"] == 3
    # and a datasets folder is an input, too
    out = tmp_path / "again.parquet"
    again = _run(RECIPE, "-i", folder, "-o", out, "--set", "self_instruct.num_instructions=1")
    assert again.exit_code == 0, again.output
    assert pl.read_parquet(out)["input"].n_unique() == 3


def test_a_folder_of_splits_names_them(tmp_path):
    split = datasets.Dataset.from_list([{"input": "Bees make honey."}])
    datasets.DatasetDict(train=split, test=split).save_to_disk(str(tmp_path / "dd"))
    result = _run(RECIPE, "-i", tmp_path / "dd", "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 1 and f"pass one of them: {tmp_path / 'dd'}/train" in result.output


def test_the_card_lists_techniques_inside_loops(tmp_path):
    folder = tmp_path / "bootstrap"
    seeds = ROOT / "recipes" / "data" / "seed_tasks.jsonl"
    result = _run(BOOTSTRAP, "-i", seeds, "-o", folder, "--set", "repeat_until.max_rounds=1")
    assert result.exit_code == 0, result.output
    card = (folder / "README.md").read_text()
    assert "**bootstrap_instructions**" in card and "**generate_instances**" in card


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("hf://datasets/only-owner", "write hf://datasets/OWNER/NAME"),
        ("hf://models/owner/name", "write hf://datasets/OWNER/NAME"),
        ("hf://datasets/owner/name/data/train.jsonl", "could not download"),
        ("hf://datasets/owner/name", "could not load hf://datasets/owner/name (split 'train')"),
    ],
)
def test_hub_inputs_fail_clearly_without_a_network(tmp_path, monkeypatch, url, says):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = _run(RECIPE, "-i", url, "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 1 and says in result.output, result.output
    assert "Traceback" not in result.output


def test_a_folder_that_is_not_a_dataset_is_never_written_into(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("my project")
    result = _run(RECIPE, "-i", DOCUMENTS, "-o", project)
    assert result.exit_code == 1 and "holds other files, not a datasets folder" in result.output
    assert [p.name for p in project.iterdir()] == ["README.md"]
    assert (project / "README.md").read_text() == "my project"


def test_a_datasets_folder_is_replaced_whole(tmp_path):
    folder = tmp_path / "generated"
    assert _run(RECIPE, "-i", DOCUMENTS, "-o", folder).exit_code == 0
    assert _run(RECIPE, "-i", DOCUMENTS, "-o", folder, "--limit", "1").exit_code == 0
    assert len({row["input"] for row in datasets.load_from_disk(str(folder))}) == 1
    assert not list(tmp_path.glob(".generated*"))


def test_the_card_names_the_overrides(tmp_path):
    folder = tmp_path / "generated"
    args = [RECIPE, "-i", DOCUMENTS, "-o", folder, "--limit", "1"]
    assert _run(*args, "--set", "self_instruct.num_instructions=5").exit_code == 0
    assert (
        "Run with `--set self_instruct.num_instructions=5`." in (folder / "README.md").read_text()
    )


@pytest.mark.parametrize(
    ("rows", "says"),
    [("hello\n", "could not read"), ("", "the input has no rows")],
)
def test_bad_standard_input_is_one_line(rows, says):
    result = _run(RECIPE, "-i", "-", "-o", "-", input=rows)
    if says == "the input has no rows":  # an empty input is an empty output, not an error
        assert result.exit_code == 0 and result.stdout == "" and "0 rows in" in result.stderr
        return
    assert result.exit_code == 1 and says in result.stderr and "Traceback" not in result.output


def test_hub_file_with_an_unknown_extension_fails_before_downloading(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _run(RECIPE, "-i", "hf://datasets/owner/name/notes.txt", "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 1 and "unknown file type '.txt'" in result.output


def test_push_to_hub_checks_the_name_before_the_run(tmp_path):
    result = _run(
        RECIPE, "-i", DOCUMENTS, "-o", tmp_path / "o.jsonl", "--push-to-hub", "not a repo"
    )
    assert result.exit_code == 1 and "--push-to-hub 'not a repo'" in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_a_missing_extra_fails_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)  # as if not installed
    result = _run(RECIPE, "-i", DOCUMENTS, "-o", tmp_path / "folder")
    assert result.exit_code == 1 and "pip install 'promptflow_dsl[hf]'" in result.output
    assert list(tmp_path.iterdir()) == []


def _loopback_args(server):
    return ["--model", "openai/loopback", "--api-base", server.api_base]


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        (['{"input": "a"}', '{"input": "b"', '{"input": "c"}'], "line 2: Expecting ',' delimiter"),
        (['{"input": "a"}', "", "[1, 2]"], "line 3: expected a JSON object, got an array"),
        (['{"input": "a"}', '{"input": NaN}'], "line 2: NaN is not valid JSON"),
        (['{"input": "a"}', '{"input": "a"} {"input": "b"}'], "line 2: Extra data at column 16"),
    ],
)
def test_a_broken_json_lines_file_names_the_line_before_any_call(
    loopback_server, tmp_path, monkeypatch, lines, says
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    source, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    source.write_text("\n".join(lines) + "\n")
    args = [RECIPE, "-i", source, "-o", out, "--chunk-size", "1", *_loopback_args(loopback_server)]
    result = _run(*args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert f"{source}, {says}" in line
    assert loopback_server.stats.requests == 0 and not out.exists()
    dry = _run(*args, "--dry-run")
    assert dry.exit_code == 1 and f"{source}, {says}" in dry.stderr


def test_a_broken_line_past_the_limit_is_not_read(tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text('{"input": "a"}\n{"input": \n')
    result = _run(RECIPE, "-i", source, "-o", tmp_path / "out.jsonl", "--limit", "1")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("rows.jsonl", '{"input": "a doc"}\n'),
        ("rows.csv", "input\na doc\n"),
        ("rows.json", '[{"input": "a doc"}]'),
    ],
)
def test_a_byte_order_mark_is_accepted(tmp_path, name, text):
    source, out = tmp_path / name, tmp_path / "out.parquet"
    source.write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = _run(RECIPE, "-i", source, "-o", out)
    assert result.exit_code == 0, result.output
    assert set(pl.read_parquet(out)["input"]) == {"a doc"}
    dry = _run(RECIPE, "-i", source, "-o", out, "--dry-run")
    assert dry.exit_code == 0, dry.output


def test_columns_whose_types_conflict_name_the_lines_of_their_chunk(tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text('{"input": "a", "tags": [1]}\n{"input": "b", "tags": {"x": 1}}\n')
    result = _run(RECIPE, "-i", source, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 1 and f"could not read {source}, lines 1-2: " in result.stderr


def test_values_whose_type_changes_between_chunks_fail_only_their_rows(tmp_path):
    source, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"input": "Owls hunt at night."}\n{"input": 5}\n{"input": true}\n')
    result = _run(RECIPE, "-i", source, "-o", out, "--chunk-size", "1")
    assert result.exit_code == 0, result.output
    frame = pl.read_ndjson(out)
    failed = frame.filter(pl.col("error").is_not_null())
    assert failed["input"].to_list() == ["true"]  # the number was read as the text "5"
    assert failed["error"][0]["type"] == "InputTypeError"
    assert "input 'input' must be a valid string, got bool True" in failed["error"][0]["message"]


AGAIN = """
from promptflow_dsl import text_generation
recipe = text_generation.step(inputs={"instruction": "generation"}).named("again")
"""
FAILED_IN_RUN_ONE = {
    "step": "self_instruct",
    "type": "MissingInput",
    "message": "input column 'input' is null",
    "attempts": 0,
    "raw_reply": None,
}


@pytest.mark.parametrize(
    "suffix", [".parquet", ".jsonl", ".json", ".csv", ""], ids=lambda s: s or "datasets folder"
)
def test_a_runs_output_is_the_next_runs_input_and_keeps_its_failures(tmp_path, suffix):
    source, again = tmp_path / "rows.jsonl", tmp_path / "again.py"
    source.write_text('{"input": "Owls hunt at night."}\n{"input": null}\n')
    again.write_text(AGAIN)
    first, second = tmp_path / f"first{suffix}", tmp_path / "second.parquet"
    assert _run(RECIPE, "-i", source, "-o", first).exit_code == 0
    result = _run(again, "-i", first, "-o", second)
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(second)
    assert frame.schema["error"] == error_dtype()
    assert frame["error"].to_list()[-1] == FAILED_IN_RUN_ONE  # still failed, for its first reason
    assert frame["error"].to_list()[:-1] == [None] * (frame.height - 1)
    assert frame["generation"].null_count() == 1


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ({"input": "x", "error": 5}, "error"),
        ({"input": "x", "usage": "high"}, "usage"),
        ({"input": "x", "model_name": 3}, "model_name"),
        ({"input": "x", "error": {"code": 5}}, "error"),
    ],
)
def test_an_input_column_named_like_a_bookkeeping_column_is_refused_before_any_call(
    loopback_server, tmp_path, monkeypatch, row, column
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    source, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps(row) + "\n")
    result = _run(RECIPE, "-i", source, "-o", out, *_loopback_args(loopback_server))
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert f"column {column!r}" in line and "rename" in line
    assert loopback_server.stats.requests == 0 and not out.exists()


def test_a_column_that_is_a_list_in_one_chunk_and_text_in_another_joins(tmp_path):
    source = tmp_path / "mixed.jsonl"
    source.write_text('{"input": [1, 2]}\n{"input": "Rivers carve valleys."}\n')
    output = tmp_path / "out.parquet"
    result = _run(RECIPE, "-i", source, "-o", output, "--chunk-size", "1")
    assert "Traceback" not in result.output and output.exists(), result.output
    out = pl.read_parquet(output)
    assert set(out["input"]) == {"[1, 2]", "Rivers carve valleys."}  # the list kept, as text
    assert out.filter(pl.col("input") == "[1, 2]")["error"][0]["type"] == "InputTypeError"


def _zero_row_parquet(path: Path) -> None:
    pl.DataFrame({"input": pl.Series([], dtype=pl.String)}).write_parquet(path)


EMPTY_INPUTS = {
    "empty.jsonl": b"",
    "blank-lines.jsonl": b"\n \n",
    "empty.csv": b"",
    "blank.csv": b"\xef\xbb\xbf\n",  # a byte order mark and a newline, as an editor saves it
    "header-only.csv": b"input\n",
    "empty.json": b"",
    "empty-array.json": b"[]\n",
    "zero-rows.parquet": _zero_row_parquet,
}


@pytest.mark.parametrize("name", EMPTY_INPUTS)
@pytest.mark.parametrize("output", ["out.parquet", "out.jsonl", "out.csv", "out.json"])
def test_every_empty_input_is_one_warning_and_an_empty_output(tmp_path, name, output):
    source = tmp_path / name
    content = EMPTY_INPUTS[name]
    content(source) if callable(content) else source.write_bytes(content)
    result = _run(RECIPE, "-i", source, "-o", tmp_path / output)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "error" not in result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: the input has no rows, so the output has none; check --input and --limit"
    ]
    assert read_frame(tmp_path / output).height == 0


def test_progress_off_a_terminal_counts_the_whole_input(tmp_path, monkeypatch):
    monkeypatch.setattr("promptflow_dsl._engine._progress.LOG_INTERVAL_S", 0.0)
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"input": f"Document {i}."}) + "\n" for i in range(9)))
    result = _run(RECIPE, "-i", source, "-o", tmp_path / "out.parquet", "--chunk-size", "4")
    lines = [x for x in result.output.splitlines() if x.startswith("progress: ")]
    assert lines and "input rows written 0/9 rows" in lines[0]  # the total from the start
    assert any("input rows written 4/9 rows" in x for x in lines)
    assert "input rows written 9/9 rows" in lines[-1]
