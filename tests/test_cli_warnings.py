"""What the command says about outputs that are empty or that hold only failures."""

from pathlib import Path

from click.testing import CliRunner

from promptflow_dsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "self_instruct.py"
DOCUMENTS = ROOT / "recipes" / "data" / "documents.jsonl"


def _run(*args):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def test_an_empty_input_says_so(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = _run(RECIPE, "-i", empty, "-o", tmp_path / "out.jsonl")
    assert "warning: the input has no rows" in result.output


def test_a_filter_that_removes_every_row_says_so(tmp_path):
    recipe = tmp_path / "none.py"
    recipe.write_text(
        "import polars as pl\nfrom promptflow_dsl import filter, self_instruct\n"
        "recipe = self_instruct.step() >> filter(pl.col('input') == 'nothing')\n"
    )
    result = _run(recipe, "-i", DOCUMENTS, "-o", tmp_path / "out.jsonl", "--limit", "2")
    assert "warning: all 2 input rows were removed by the recipe's filter" in result.output


def test_a_run_where_every_row_failed_says_so(tmp_path):
    source = tmp_path / "docs.jsonl"
    source.write_text('{"input": null}\n{"input": null}\n')
    result = _run(RECIPE, "-i", source, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 2
    assert "warning: every one of the 2 rows failed" in result.output


def test_a_run_with_rows_gives_no_emptiness_warning(tmp_path):
    result = _run(RECIPE, "-i", DOCUMENTS, "-o", tmp_path / "out.jsonl", "--limit", "1")
    assert result.exit_code == 0 and "warning:" not in result.output


def test_show_warns_of_a_step_that_writes_over_an_input_column(tmp_path):
    recipe = tmp_path / "overwrite.py"
    recipe.write_text(
        "from promptflow_dsl import explode, self_instruct\n"
        "recipe = self_instruct.step() >> explode('instructions', into='input')\n"
    )
    result = CliRunner().invoke(main, ["show", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "warning: step 'explode' writes column 'input', which the input already has" in (
        result.output
    )
    clean = CliRunner().invoke(main, ["show", str(RECIPE)])
    assert "warning:" not in clean.output


def test_map_reads_a_technique_input_from_another_column(tmp_path):
    source = tmp_path / "docs.jsonl"
    source.write_text('{"document": "Owls hunt at night."}\n')
    out = tmp_path / "out.jsonl"
    missing = _run(RECIPE, "-i", source, "-o", out)
    assert missing.exit_code == 1
    assert "--map self_instruct.PARAM=COLUMN" in missing.output  # the hint names the CLI way
    result = _run(RECIPE, "-i", source, "-o", out, "--map", "self_instruct.input=document")
    assert result.exit_code == 0, result.output
    assert "Owls hunt at night." in out.read_text()
    wrong = _run(RECIPE, "-i", source, "-o", out, "--map", "self_instruct.text=document")
    assert wrong.exit_code == 1 and "'text' is not an input of step 'self_instruct'" in (
        wrong.output
    )
