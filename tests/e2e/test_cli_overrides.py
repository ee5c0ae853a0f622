"""--set and --map on the command line, through the loopback server."""

from pathlib import Path

import polars as pl
from click.testing import CliRunner

from promptflow_dsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "self_instruct.py"
DOCUMENTS = ROOT / "recipes" / "data" / "documents.jsonl"


def _run(*args):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def test_a_model_override_keeps_the_runs_api_base(loopback_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out = tmp_path / "out.parquet"
    result = _run(
        RECIPE, "-i", DOCUMENTS, "-o", out, "--limit", "1", "--max-attempts", "1",
        "--model", "openai/loopback", "--api-base", loopback_server.api_base,
        "--set", "text_generation.model=openai/other-model",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(out)
    assert frame["error"].is_null().all(), frame["error"].to_list()
    sent = [r.body["model"] for r in loopback_server.requests]
    assert set(sent) == {"loopback", "other-model"}  # both went to the run's --api-base
    assert set(frame["model_name"]) == {"openai/other-model"}


def test_set_num_generations_samples_each_row(tmp_path):
    out = tmp_path / "out.parquet"
    result = _run(
        RECIPE, "-i", DOCUMENTS, "-o", out, "--limit", "1",
        "--set", "text_generation.num_generations=2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(out)
    assert frame.schema["generations"] == pl.List(pl.String)
    assert frame["generations"].list.len().to_list() == [2] * frame.height


def test_set_a_bad_num_generations_fails_in_one_line_before_any_call(loopback_server, tmp_path):
    result = _run(
        RECIPE, "-i", DOCUMENTS, "-o", tmp_path / "out.parquet",
        "--model", "openai/loopback", "--api-base", loopback_server.api_base,
        "--set", "text_generation.num_generations=0",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "num_generations=0" in result.output and "at least 1" in result.output
    assert "Traceback" not in result.output
    assert loopback_server.stats.requests == 0
