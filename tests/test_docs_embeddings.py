"""docs/embeddings.md: its first example runs offline as written and prints what it says."""

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "embeddings.md"


def test_the_first_example_prints_what_its_comments_say():
    first = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(first, str(DOC), "exec"), {})
    kept, duplicates = printed.getvalue().splitlines()
    assert kept == "['Write a poem about the sea.', 'Name three rivers in Europe.']"
    assert duplicates.startswith("[{'row': 1, 'similarity': 0.92")
    assert "# ['Write a poem about the sea.', 'Name three rivers in Europe.']" in first
