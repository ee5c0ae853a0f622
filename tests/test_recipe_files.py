"""Recipe files: imports beside the file, and one-line errors when a file fails to load."""

import sys
import textwrap

import polars as pl
from click.testing import CliRunner

from promptflow_dsl.cli import main

QA_MODULE = '''
from pydantic import BaseModel, Field
from promptflow_dsl import technique


class QA(BaseModel):
    question: str = Field(description="A question the text answers.")
    answer: str = Field(description="Its answer, from the text.")


@technique(result=QA)
def extract_qa(text: str) -> list:
    """One question and its answer, from a text."""
    return [{"role": "user", "content": f"Write one question and its answer about: {text}"}]
'''


def _project(tmp_path, module: str):
    """task/{module}.py (a technique) and task/my_recipe.py that imports it."""
    task = tmp_path / "task"
    task.mkdir()
    (task / f"{module}.py").write_text(QA_MODULE)
    (task / "my_recipe.py").write_text(
        f"from {module} import extract_qa\n\nrecipe = extract_qa.step()\n"
    )
    source = tmp_path / "texts.jsonl"
    source.write_text('{"text": "Owls hunt at night."}\n')
    return task, source


def test_a_recipe_imports_a_module_beside_it_from_any_folder(tmp_path, monkeypatch):
    task, source = _project(tmp_path, "qa_beside")
    monkeypatch.chdir(tmp_path)  # not the recipe's folder
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main, ["run", "task/my_recipe.py", "-i", str(source), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert pl.read_ndjson(out).columns[:3] == ["text", "question", "answer"]
    assert str(task) not in sys.path  # only for the duration of loading


def test_a_recipe_imports_a_module_beside_it_run_from_its_folder(tmp_path, monkeypatch):
    task, source = _project(tmp_path, "qa_inside")
    monkeypatch.chdir(task)
    result = CliRunner().invoke(main, ["show", "my_recipe.py"])
    assert result.exit_code == 0, result.output
    assert "1. extract_qa" in result.output


def test_a_recipe_that_fails_to_import_is_one_line(tmp_path):
    recipe = tmp_path / "broken.py"
    recipe.write_text("import polars\nfrom no_such_module_here import thing\n\nrecipe = thing\n")
    for command in (["show", str(recipe)], ["run", str(recipe), "-i", "x.jsonl", "-o", "y.jsonl"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert f"{recipe}:2" in lines[0]
        assert "ModuleNotFoundError: No module named 'no_such_module_here'" in lines[0]
    debug = CliRunner().invoke(main, ["--debug", "show", str(recipe)])
    assert debug.exit_code == 1 and "Traceback" in debug.output


def test_a_recipe_with_a_syntax_error_names_its_line(tmp_path):
    recipe = tmp_path / "typo.py"
    recipe.write_text(
        textwrap.dedent("""\
        from promptflow_dsl import self_instruct
        recipe = self_instruct.step(
    """)
    )
    result = CliRunner().invoke(main, ["show", str(recipe)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{recipe}:2" in result.output and "SyntaxError" in result.output
