"""The ROUGE-L filter against the reference ``rouge_score`` implementation."""

import polars as pl
from hypothesis import given
from hypothesis import strategies as st
from rouge_score import rouge_scorer, tokenize

from promptflow_dsl import dedup_rouge_l
from promptflow_dsl._rouge import judge, nearest_scores, rouge_l, rouge_tokens

WORDS = st.sampled_from(
    "the a sea Sea poem write list primes 3 numbers about, explain why how-to sky! blue".split()
)
texts = st.lists(WORDS, max_size=12).map(" ".join)


def reference_f(new: str, other: str) -> float:
    return rouge_scorer._score_lcs(
        tokenize.tokenize(new, None), tokenize.tokenize(other, None)
    ).fmeasure


@given(texts)
def test_tokens_match_rouge_score(text):
    assert rouge_tokens(text) == tokenize.tokenize(text, None)


@given(texts, texts)
def test_scores_match_rouge_score(new, other):
    assert abs(rouge_l(new, other) - reference_f(new, other)) <= 1e-12


@given(st.lists(texts, max_size=15), st.lists(texts, max_size=6))
def test_nearest_scores_are_the_best_reference_score(generated, seeds):
    expected = [max((reference_f(g, s) for s in seeds), default=0.0) for g in generated]
    got = nearest_scores(generated, seeds)
    assert len(got) == len(generated)
    assert all(abs(a - b) <= 1e-12 for a, b in zip(got, expected, strict=True))


@given(st.lists(texts, max_size=25), st.lists(texts, max_size=5))
def test_decisions_and_scores_match_the_sequential_reference(candidates, seeds):
    kept: list[str] = list(seeds)
    expected = []
    for candidate in candidates:
        scores = [reference_f(candidate, k) for k in kept]
        best = max(scores, default=0.0)
        expected.append((best <= 0.7, best, sum(scores) / len(scores) if scores else 0.0))
        if best <= 0.7:
            kept.append(candidate)
    verdicts = judge(candidates, seeds)
    assert [v.kept for v in verdicts] == [e[0] for e in expected]
    for verdict, (ok, best, mean) in zip(verdicts, expected, strict=True):
        assert abs(verdict.max_score - best) <= 1e-9
        if ok:
            assert abs(verdict.avg_similarity_score - mean) <= 1e-9
            assert len(verdict.most_similar) == min(
                10, len(seeds) + sum(v.kept for v in verdicts[: verdicts.index(verdict)])
            )


def test_step_keeps_order_nulls_and_the_pool_of_earlier_rounds():
    first = dedup_rouge_l(against=["Compose a poem about the ocean."]).run(
        pl.DataFrame(
            {
                "instruction": [
                    "Write a poem about the sea.",
                    "Write a poem about the sea!",
                    None,
                    "List primes.",
                ]
            }
        )
    )
    assert first["instruction"].to_list() == ["Write a poem about the sea.", None, "List primes."]
    assert first["most_similar"][0][0]["text"] == "Compose a poem about the ocean."
    grown = pl.concat(
        [first, pl.DataFrame({"instruction": ["List primes!", "Explain gravity."]})], how="diagonal"
    )
    second = dedup_rouge_l().run(grown)
    assert second["instruction"].to_list() == [
        "Write a poem about the sea.",
        None,
        "List primes.",
        "Explain gravity.",
    ]
    assert second["avg_similarity_score"][0] == first["avg_similarity_score"][0]  # not judged again
