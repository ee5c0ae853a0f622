"""The report's diversity and score sections: distinct-n, embedding figures, histograms."""

import random
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from promptflow_dsl import embed, text_generation
from promptflow_dsl._report import _figures
from promptflow_dsl._report._figures import distinct_n, embedding_figures, measure, score_columns
from promptflow_dsl._vectors import unit_rows
from promptflow_dsl.cli import main

pytest.importorskip("matplotlib")

PNG = re.compile(r'alt="([^"]+)" src="data:image/png;base64,')
words = st.lists(st.sampled_from(["a", "b", "c", "rain", "sea"]), min_size=0, max_size=8)
texts = st.lists(words.map(" ".join), min_size=1, max_size=6)


@given(texts, st.integers(1, 3))
def test_distinct_n_is_a_share_that_halves_when_every_text_is_repeated(drawn, n):
    value = distinct_n(drawn, n)
    if value is None:
        assert all(len(t.split()) < n for t in drawn)
        return
    assert 0 < value <= 1
    assert distinct_n(drawn + drawn, n) == pytest.approx(value / 2)


def test_distinct_n_of_texts_without_repeats_is_one():
    assert distinct_n(["the quick brown fox", "jumps over lazy dogs"], 1) == 1.0
    assert distinct_n(["Rain. rain, RAIN!"], 1) == pytest.approx(1 / 3)  # words, any case


def section(page: str, title: str) -> str:
    return page.split(f"<h2>{title}</h2>", 1)[1].split("</section>", 1)[0]


def plain(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    instructions = [f"Write a poem about topic {i}." for i in range(20)]
    instructions += ["Name three rivers in Europe.", "Name three rivers in Europe!"]
    frame = (text_generation.step() >> embed()).run(
        pl.DataFrame({"instruction": instructions}), model="mock"
    )
    rng = random.Random(0)
    frame = frame.with_columns(
        quality_score=pl.Series([rng.randint(1, 10) for _ in range(frame.height)]),
        ratings=pl.Series([[rng.randint(1, 5) for _ in range(3)] for _ in range(frame.height)]),
        ratings_note=pl.lit("not a number"),
    )
    path = tmp_path_factory.mktemp("diversity") / "scored.parquet"
    frame.write_parquet(path)
    return path


def test_the_report_shows_diversity_and_scores(scored, tmp_path):
    target = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", str(scored), "--to", str(target)])
    assert result.exit_code == 0, result.output
    page = target.read_text()
    frame = pl.read_parquet(scored)
    diversity = plain(section(page, "Diversity"))
    instructions = frame["instruction"].to_list()
    assert f"distinct-1 (instruction) {distinct_n(instructions, 1):.3f}" in diversity
    assert f"distinct-2 (generation) {distinct_n(frame['generation'].to_list(), 2):.3f}" in (
        diversity
    )
    units = unit_rows(np.array(frame["embedding"].to_list()))
    pairs = (units @ units.T)[np.triu_indices(frame.height, k=1)]
    assert f"mean pairwise cosine distance (embedding) {1 - pairs.mean():.3f}" in diversity
    assert f"Embeddings of all {frame.height} rows" in diversity
    assert "closest pair (cosine" in diversity and "most isolated" in diversity
    scores = plain(section(page, "Scores"))
    assert f"quality_score: values {frame.height}" in scores
    assert f"ratings: values {3 * frame.height}" in scores  # each item of each list
    assert "ratings_note" not in scores  # text is no score
    best = frame["quality_score"].arg_max() + 1
    assert f"highest quality_score: row {best}" in scores
    assert PNG.findall(page) == [
        "length distributions",
        "leading verbs",
        "nearest-neighbour similarity of the embeddings",
        "histogram of quality_score",
        "histogram of ratings",
    ]


def test_without_embeddings_the_report_says_how_to_get_them(tmp_path):
    frame = pl.DataFrame({"instruction": ["Write a haiku.", "Write a limerick."]})
    source = tmp_path / "plain.parquet"
    frame.write_parquet(source)
    assert CliRunner().invoke(main, ["report", str(source)]).exit_code == 0
    page = (tmp_path / "plain.report.html").read_text()
    assert "add an <code>embed</code> step" in section(page, "Diversity")
    assert "<h2>Scores</h2>" not in page


def test_embedding_figures_use_a_seeded_sample(monkeypatch):
    monkeypatch.setattr(_figures, "EMBEDDING_SAMPLE", 10)
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"embedding": rng.standard_normal((40, 8)).tolist()})
    first = embedding_figures(frame, "embedding", None)
    again = embedding_figures(frame, "embedding", None)
    assert first is not None and first.sample == 10 and first.rows == 40
    assert first.mean_distance == again.mean_distance and first.nearest == again.nearest
    assert embedding_figures(frame.head(1), "embedding", None) is None  # no pair to measure


def test_score_columns_are_numbers_named_like_scores():
    frame = pl.DataFrame(
        {
            "score": [1.0],
            "judge_rating": [[4, 5]],
            "scores_text": ["x"],
            "rating": ["high"],
            "underscore": [1],
            "keep_score": [True],
        }
    )
    assert score_columns(frame) == ["score", "judge_rating"]
    assert [s.column for s in measure(frame).scores] == ["score", "judge_rating"]
