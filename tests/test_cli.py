import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from promptflow_dsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "self_instruct.py"
DOCUMENTS = ROOT / "recipes" / "data" / "documents.jsonl"


def test_run_bundled_recipe_offline(tmp_path):
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(
        main, ["run", str(RECIPE), "-i", str(DOCUMENTS), "-o", str(out), "--limit", "3"]
    )
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(out)
    assert {"input", "instruction", "generation", "model_name"} <= set(frame.columns)
    assert frame["input"].n_unique() == 3
    assert frame["model_name"].str.contains("mock").all()
    assert "3 rows in" in result.output


def test_jsonl_output_and_csv_input(tmp_path):
    source = tmp_path / "docs.csv"
    pl.DataFrame({"input": ["Owls hunt at night."]}).write_csv(source)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["run", str(RECIPE), "-i", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(row["input"] == "Owls hunt at night." for row in rows)


def test_missing_column_is_one_clear_line(tmp_path):
    source = tmp_path / "docs.jsonl"
    source.write_text('{"text": "x"}\n')
    result = CliRunner().invoke(
        main, ["run", str(RECIPE), "-i", str(source), "-o", str(tmp_path / "o.parquet")]
    )
    assert result.exit_code == 1
    assert "error: step 'self_instruct' needs column 'input'" in result.output
    assert "Traceback" not in result.output


def test_unknown_extension_and_missing_recipe(tmp_path):
    bad = CliRunner().invoke(
        main, ["run", str(RECIPE), "-i", str(DOCUMENTS), "-o", str(tmp_path / "o.xlsx")]
    )
    assert bad.exit_code == 1 and "unknown file type '.xlsx'" in bad.output
    gone = CliRunner().invoke(
        main, ["run", "nope.py", "-i", str(DOCUMENTS), "-o", str(tmp_path / "o.jsonl")]
    )
    assert gone.exit_code == 1 and "recipe file nope.py does not exist" in gone.output


def test_show_prints_steps_columns_and_a_mermaid_graph():
    result = CliRunner().invoke(main, ["show", str(RECIPE)])
    assert result.exit_code == 0, result.output
    assert "1. self_instruct" in result.output and "instructions: List(String)" in result.output
    assert "flowchart LR" in result.output and 's2("explode")' in result.output


def test_cache_info_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTFLOW_CACHE_DIR", str(tmp_path))
    from promptflow_dsl import ReplyCache
    from promptflow_dsl._engine._cache import CachedReply

    ReplyCache(tmp_path / "cache.sqlite").put("k", CachedReply("raw", "{}", "m", 1, 1, 0.0))
    info = CliRunner().invoke(main, ["cache", "info"])
    assert info.exit_code == 0 and "1 replies" in info.output
    cleared = CliRunner().invoke(main, ["cache", "clear"])
    assert "removed 1 replies" in cleared.output


def test_max_failures_sets_the_exit_code(tmp_path):
    source = tmp_path / "docs.jsonl"
    source.write_text('{"input": "fine"}\n{"input": null}\n')
    args = ["run", str(RECIPE), "-i", str(source), "-o", str(tmp_path / "o.parquet")]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert CliRunner().invoke(main, [*args, "--max-failures", "0"]).exit_code == 3


def test_dry_run_makes_no_call_and_prices_every_step(loopback_server, tmp_path):
    args = [
        "run",
        str(RECIPE),
        "-i",
        str(DOCUMENTS),
        "-o",
        str(tmp_path / "o.parquet"),
        "--dry-run",
        "--model",
        "openai/gpt-4o-mini",
        "--api-base",
        loopback_server.api_base,
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert loopback_server.stats.requests == 0 and not (tmp_path / "o.parquet").exists()
    assert "--- self_instruct (openai/gpt-4o-mini): first prompt ---" in result.output
    assert "# Context" in result.output and "text_generation" in result.output
    total = float(result.output.rsplit("total dollars: ", 1)[1].split()[0])
    assert total > 0


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_outputs_carry_their_provenance(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    assert (
        CliRunner()
        .invoke(main, ["run", str(RECIPE), "-i", str(DOCUMENTS), "-o", str(out), "--limit", "2"])
        .exit_code
        == 0
    )
    if suffix == ".parquet":
        assert "promptflow_dsl" in pl.read_parquet_metadata(out)
    else:
        assert (tmp_path / "out.jsonl.meta.json").exists()
    shown = CliRunner().invoke(main, ["show", str(out)])
    record = json.loads(shown.output)
    assert record["recipe"]["source"] == RECIPE.read_text()
    assert record["recipe"]["sha256"] and record["versions"]["litellm"]
    assert [s["name"] for s in record["steps"]] == ["self_instruct", "explode", "text_generation"]
    assert (
        record["steps"][0]["attributes"] == {"num_instructions": 3}
        and record["steps"][0]["model"] == "mock"
    )
    assert record["totals"]["rows_in"] == 2 and record["started"] <= record["finished"]


def test_show_of_a_file_without_provenance_says_so(tmp_path):
    plain = tmp_path / "plain.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(plain)
    result = CliRunner().invoke(main, ["show", str(plain)])
    assert result.exit_code == 1 and "carries no provenance" in result.output


def test_dry_run_of_a_whole_frame_recipe_rehearses_every_row(tmp_path):
    recipe = ROOT / "recipes" / "self_instruct_bootstrap.py"
    seeds = ROOT / "recipes" / "data" / "seed_tasks.jsonl"
    args = ["run", str(recipe), "-i", str(seeds), "-o", str(tmp_path / "o.jsonl"), "--dry-run"]
    result = CliRunner().invoke(main, [*args, "--model", "text-completion-openai/davinci-002"])
    assert result.exit_code == 0, result.output
    assert "bootstrap_instructions" in result.output and "generate_instances" in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_dry_run_follows_the_requested_counts_downstream(tmp_path):
    args = ["run", str(RECIPE), "-i", str(DOCUMENTS), "-o", str(tmp_path / "o.jsonl"), "--dry-run"]
    result = CliRunner().invoke(main, [*args, "--set", "self_instruct.num_instructions=5"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line.strip()}
    documents = len(DOCUMENTS.read_text().splitlines())
    assert int(rows["self_instruct"][2]) == documents
    assert int(rows["text_generation"][2]) == 5 * documents  # one response per instruction
