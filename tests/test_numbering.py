"""The cluster's sample numbering: live rows never share a sample of a prompt, a restarted
worker gets back the samples it held, and the samples handed out never leave a gap (so
every reply the cache holds for a prompt is used again before a new call is made)."""

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from promptflow_dsl._ray._numbering import Numbering

PROMPTS = st.sampled_from(["p", "q", "r"])
WORKERS = st.sampled_from(["a", "b", "c"])
STEPS = st.lists(
    st.one_of(st.tuples(st.just("take"), PROMPTS, WORKERS), st.tuples(st.just("die"), WORKERS)),
    max_size=60,
)


@given(STEPS)
def test_live_rows_never_share_a_sample_and_no_sample_is_skipped(steps):
    numbering = Numbering()
    held: dict[str, list[tuple[str, int]]] = defaultdict(list)
    handed: dict[str, set[int]] = defaultdict(set)
    for step in steps:
        if step[0] == "take":
            _, prompt, worker = step
            index = numbering.take(prompt, worker)
            held[worker].append((prompt, index))
            handed[prompt].add(index)
        else:
            numbering.release(step[1])
            held.pop(step[1], None)
        live = [entry for entries in held.values() for entry in entries]
        assert len(live) == len(set(live))  # no two live rows hold one sample of a prompt
    for prompt, indices in handed.items():
        assert indices == set(range(len(indices))), prompt  # 0, 1, 2... with no gap


@given(STEPS, st.lists(PROMPTS, max_size=10))
def test_a_restarted_worker_gets_back_the_samples_it_held(steps, prompts):
    numbering = Numbering()
    for step in steps:
        if step[0] == "take":
            numbering.take(step[1], step[2])
        else:
            numbering.release(step[1])
    before = sorted((p, numbering.take(p, "dying")) for p in prompts)
    numbering.release("dying")  # Ray restarts it; it runs the same rows again
    after = sorted((p, numbering.take(p, "dying")) for p in prompts)
    assert after == before
