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
