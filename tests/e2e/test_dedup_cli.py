"""``promptflow run`` with the dedup and selection steps: a recipe file over a JSONL input
that holds a row an earlier run failed, written out and read back."""

import json
import subprocess

import polars as pl

from promptflow_dsl._recipe._recipe import as_frame

from ._cli import promptflow_run, run_env

RECIPE = """\
from promptflow_dsl import dedup_exact, dedup_minhash, select_top_k

recipe = (
    dedup_exact(keep="score")
    >> dedup_minhash(keep="score")
    >> select_top_k(2, by="score", group_by="topic")
)
"""

FAILED = {
    "step": "judge",
    "type": "ParseError",
    "message": "no score",
    "attempts": 1,
    "raw_reply": "?",
}
ROWS = [
    {"topic": "sea", "instruction": "Write a poem about the sea.", "score": 3},
    {"topic": "sea", "instruction": "write a poem about the SEA!", "score": 5},
    {"topic": "sea", "instruction": "Write a poem about the sea, please.", "score": 4},
    {"topic": "sea", "instruction": "Write a poem about the sea", "score": None, "error": FAILED},
    {"topic": "sea", "instruction": "Write a short poem about the sea.", "score": 1},
    {"topic": "math", "instruction": "List three prime numbers.", "score": 2},
    {"topic": "math", "instruction": "List the three prime numbers.", "score": 1},
    {"topic": "math", "instruction": None, "score": 7},
]


def write_input(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    recipe = tmp_path / "dedup.py"
    recipe.write_text(RECIPE)
    return recipe, source


def test_dedup_and_top_k_through_the_command_line(tmp_path):
    recipe, source = write_input(tmp_path)
    output = tmp_path / "out.jsonl"
    done = subprocess.run(
        promptflow_run(recipe, source, output, "--no-progress"),
        env=run_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    out = pl.read_ndjson(output)
    assert out.select("topic", "instruction", "score").rows() == [
        ("sea", "write a poem about the SEA!", 5),
        ("sea", "Write a poem about the sea", None),  # failed in an earlier run: kept as it was
        ("sea", "Write a short poem about the sea.", 1),  # Jaccard 0.61 with the first
        ("math", "List three prime numbers.", 2),
        ("math", None, 7),  # no text: never a duplicate
    ]
    assert out["duplicates"].to_list() == [
        ["Write a poem about the sea.", "Write a poem about the sea, please."],
        None,
        [],
        ["List the three prime numbers."],
        None,
    ]
    assert out["error"].to_list()[1]["message"] == "no score"
    # The command line makes what the recipe makes in Python.
    namespace: dict = {}
    exec(RECIPE, namespace)  # noqa: S102 - the test's own recipe text
    expected = namespace["recipe"].run(as_frame(ROWS))
    assert out.select("instruction", "duplicates").equals(
        expected.select("instruction", "duplicates")
    )


def test_keep_dropped_and_a_threshold_from_set(tmp_path):
    recipe, source = write_input(tmp_path)
    output = tmp_path / "flagged.jsonl"
    done = subprocess.run(
        promptflow_run(
            recipe,
            source,
            output,
            "--no-progress",
            "--set",
            "dedup_exact.keep_dropped=true",
            "--set",
            "dedup_minhash.keep_dropped=true",
            "--set",
            "dedup_minhash.threshold=0.6",
            "--set",
            "select_top_k.k=10",
        ),
        env=run_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    out = pl.read_ndjson(output)
    assert out.height == len(ROWS)  # nothing dropped: every duplicate flagged
    assert out["duplicate_of"].to_list() == [1, None, 1, None, 1, None, 5, None]
    jaccard = out["jaccard"].to_list()
    assert jaccard[0] is None and 0.6 <= jaccard[4] < 0.7 and jaccard[6] == 0.76
    bad = subprocess.run(
        promptflow_run(recipe, source, output, "--set", "dedup_minhash.threshold=2"),
        env=run_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr + bad.stdout
    assert "threshold=2.0 must be in (0, 1]" in bad.stderr + bad.stdout
