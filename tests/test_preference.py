"""preference_pairs: the best against the worst (or a random lower one), by a margin."""

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptflow_dsl import preference_pairs, to_training_format
from promptflow_dsl._recipe._preference import pick_pair

scores = st.lists(st.one_of(st.none(), st.integers(1, 5).map(float)), min_size=0, max_size=6)


@given(scores=scores, margin=st.sampled_from([0.0, 1.0, 2.5]), worst=st.booleans())
def test_a_pair_is_the_best_and_a_lower_score_by_the_margin_or_a_reason(scores, margin, worst):
    picked = pick_pair(scores, rejected="worst" if worst else "random", min_margin=margin, seed="s")
    known = [s for s in scores if s is not None]
    if isinstance(picked, str):
        assert picked.startswith("no pair")
        assert len(known) < 2 or not [s for s in known if max(known) - s >= max(margin, 1e-9)]
        return
    best, other = picked
    assert scores[best] == max(known) and scores.index(max(known)) == best  # the earliest best
    assert scores[other] is not None and scores[best] - scores[other] >= margin
    assert scores[other] < scores[best]
    if worst:
        assert scores[other] == min(known)


def test_random_rejection_depends_on_the_seed_and_the_row_not_its_position():
    row = {"generations": [["a", "b", "c", "d"]], "ratings": [[5.0, 1.0, 2.0, 3.0]]}
    other = {"generations": [["x", "y"]], "ratings": [[1.0, 2.0]]}
    step = preference_pairs(rejected="random", seed=7)
    alone = step.run(pl.DataFrame(row))["rejected"][0]
    after = step.run(pl.concat([pl.DataFrame(other), pl.DataFrame(row)]))["rejected"][1]
    assert alone == after and alone in {"b", "c", "d"}


def test_a_row_without_a_pair_stays_and_says_why_and_a_failed_row_keeps_its_error():
    frame = pl.DataFrame(
        {
            "generations": [["a", "b"], ["a", "b"], ["a"], None],
            "ratings": [[4.0, 4.0], [5.0, 4.5], [3.0, 2.0], None],
        }
    )
    out = preference_pairs(min_margin=1.0).run(frame)
    assert out.height == 4 and out["chosen"].null_count() == 4
    notes = out["notes"].to_list()
    assert notes[0] == ["preference_pairs: no pair: every scored generation has the same score"]
    assert notes[1] == ["preference_pairs: no pair: no score at least 1 below the best (5)"]
    assert "1 generations but 2 scores" in notes[2][0]
    assert notes[3] is None


def test_the_dpo_export_reads_the_pairs():
    frame = pl.DataFrame(
        {"instruction": ["Add 2 and 3."], "generations": [["5", "6"]], "ratings": [[5.0, 1.0]]}
    )
    out = (preference_pairs() >> to_training_format("dpo")).run(frame)
    assert out.columns == ["prompt", "chosen", "rejected"]
    assert out.row(0) == ("Add 2 and 3.", "5", "6")


def test_bad_options_are_refused_when_the_step_is_made():
    with pytest.raises(ValueError, match="rejected"):
        preference_pairs(rejected="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="never negative"):
        preference_pairs(min_margin=-1)
