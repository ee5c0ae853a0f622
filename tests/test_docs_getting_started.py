"""docs/getting-started.md: the own-technique walk-through works as written."""

import re
import shlex
import sys
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from promptflow_dsl.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "getting-started.md"
SECTION = DOC.read_text().split("## Your own technique")[1].split("\n## ")[0]


def _files() -> dict[str, str]:
    """Each code block that starts with `# task/NAME`, by its path."""
    blocks = re.findall(r"```python\n# (task/\S+)\n(.*?)```", SECTION, re.S)
    data = re.findall(r"`(task/\S+)`:\n\n```json\n(.*?)```", SECTION, re.S)
    return {path: body for path, body in blocks + data}


def _commands() -> list[list[str]]:
    (block,) = re.findall(r"```bash\n(.*?)```", SECTION, re.S)
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("promptflow")]


def test_the_walk_through_runs_as_written(tmp_path, monkeypatch):
    files = _files()
    assert set(files) == {"task/qa.py", "task/my_recipe.py", "task/texts.jsonl"}
    for path, body in files.items():
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(body)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "qa", raising=False)  # another test's qa.py
    for args in _commands():
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
    assert pl.read_ndjson("out/qa.jsonl")["question"].len() == 2 * 3
    assert pl.read_ndjson("out/qa5.jsonl")["question"].len() == 2 * 5


def test_the_python_example_runs(tmp_path, monkeypatch):
    (tmp_path / "qa.py").write_text(_files()["task/qa.py"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "qa", raising=False)
    example = re.search(
        r"```python\n(from qa import extract_qa\n\nextract_qa\.render.*?)```", SECTION, re.S
    )
    namespace: dict = {}
    exec(example.group(1), namespace)  # noqa: S102 - the documented example, as written
    assert len(namespace["result"].questions) == 3
