"""docs/dedup.md: its examples run as written, and its table is the layout the step uses."""

import doctest
import re
from pathlib import Path

import pytest

from promptflow_dsl._recipe._minhash import band_layout

DOC = (Path(__file__).resolve().parents[1] / "docs" / "dedup.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)


def test_the_examples_give_what_the_page_shows():
    session = "".join(block for block in BLOCKS if block.startswith(">>>"))
    test = doctest.DocTestParser().get_doctest(session, {}, "dedup.md", "docs/dedup.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_the_recipe_builds():
    namespace: dict = {}
    exec(BLOCKS[0], namespace)  # noqa: S102 - the page's own example
    assert repr(namespace["recipe"]) == "self_instruct >> explode >> dedup_exact >> dedup_minhash"


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_the_detection_table_is_the_band_layout(threshold):
    bands, rows = band_layout(threshold, 128)
    line = next(line for line in DOC.splitlines() if line.startswith(f"| {threshold} |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[1] == f"{bands} x {rows}"
    found = [
        1 - (1 - s**rows) ** bands
        for s in (threshold - 0.1, threshold, threshold + 0.05, threshold + 0.1)
    ]
    assert cells[2:] == [f"{p:.3f}" for p in found]
