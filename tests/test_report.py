"""promptflow report: figures measured from real offline runs, rendered to self-contained HTML."""

import base64
import html
import json
import re
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from promptflow_dsl import conversation, text_generation
from promptflow_dsl._report import leading_word, measure
from promptflow_dsl._rouge import nearest_scores
from promptflow_dsl.cli import main

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "self_instruct.py"
DOCUMENTS = ROOT / "recipes" / "data" / "documents.jsonl"
SEEDS = ROOT / "recipes" / "data" / "seed_tasks.jsonl"
PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    source = folder / "docs.jsonl"
    source.write_text(DOCUMENTS.read_text() + '{"input": null}\n')  # one row fails
    out = folder / "out.parquet"
    result = CliRunner().invoke(main, ["run", str(RECIPE), "-i", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_report_shows_the_run_and_embeds_its_plots(generated, tmp_path):
    target = tmp_path / "r.html"
    result = CliRunner().invoke(
        main, ["report", str(generated), "--seeds", str(SEEDS), "--to", str(target)]
    )
    assert result.exit_code == 0, result.output
    page = target.read_text()
    frame = pl.read_parquet(generated)
    text = _text(page)
    failed = frame["error"].drop_nulls().len()
    assert failed == 1
    assert f"rows {frame.height:,}" in text and f"failed rows {failed}" in text
    assert "model: mock (offline, fabricated)" in text and "failure: MissingInput 1 rows" in text
    totals = json.loads(pl.read_parquet_metadata(generated)["promptflow_dsl"])["totals"]
    assert f"calls {totals['calls']:,}" in text  # every step's calls, not the last column's
    assert f"tokens in {totals['input_tokens']:,}" in text
    last_step = frame["usage"].struct.field("input_tokens").sum()
    assert totals["input_tokens"] > last_step
    images = PNG.findall(page)
    assert len(images) == 3  # lengths, leading verbs, similarity to the seeds
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    seeds = pl.read_ndjson(SEEDS)["instruction"].to_list()
    distinct = list(dict.fromkeys(frame["instruction"].drop_nulls().to_list()))
    mean = sum(nearest_scores(distinct, seeds)) / len(distinct)
    assert f"For each of {len(distinct)} distinct instructions" in text
    assert f"Mean {mean:.3f}" in text
    assert "self_instruct &gt;&gt; explode &gt;&gt; text_generation" in page  # the provenance


def test_default_report_path_and_no_seeds(generated):
    result = CliRunner().invoke(main, ["report", str(generated)])
    assert result.exit_code == 0, result.output
    page = generated.with_name("out.report.html").read_text()
    assert "Pass --seeds SEEDS.jsonl" in page and len(PNG.findall(page)) == 2


def test_report_errors_are_one_line(generated, tmp_path):
    gone = CliRunner().invoke(main, ["report", str(tmp_path / "missing.parquet")])
    assert gone.exit_code == 1 and "missing.parquet does not exist" in gone.output
    bad = CliRunner().invoke(main, ["report", str(generated), "--response-column", "nope"])
    assert bad.exit_code == 1 and "the output has no column 'nope'" in bad.output
    assert "Traceback" not in gone.output + bad.output


def test_a_file_without_provenance_reports_its_usage_columns(generated, tmp_path):
    plain = tmp_path / "plain.parquet"
    frame = pl.read_parquet(generated)
    frame.write_parquet(plain)  # no key-value metadata
    assert CliRunner().invoke(main, ["report", str(plain)]).exit_code == 0
    text = _text((tmp_path / "plain.report.html").read_text())
    tokens = frame["usage"].struct.field("input_tokens").sum()
    assert f"tokens in {tokens:,}" in text and "calls n/a" in text
    assert "carries no provenance" in text


def test_conversations_give_instructions_and_responses():
    recipe = text_generation.step() >> conversation(user="instruction", assistant="generation")
    frame = recipe.run(
        [{"instruction": "Name three rivers."}, {"instruction": "Why rain?"}], model="mock"
    )
    figures = measure(frame.drop("instruction", "generation"))
    assert figures.instruction_column == "conversation (first user turn)"
    assert figures.leading_verbs == [("name", 1)] and figures.questions == 1
    assert figures.response_lengths == [len(g.split()) for g in frame["generation"]]


@given(st.text(max_size=60))
def test_leading_word_is_a_lower_case_word_of_the_text(text):
    found = leading_word(text)
    if found is not None:
        word, kind = found
        assert word == word.lower() and word in text.lower()
        assert kind in {"verb", "question", "other"}
        assert (
            leading_word("Please " + text) == found
            or text.lower()
            .lstrip()
            .startswith(("please", "can you", "could you", "would you", "will you"))
            or not text.strip()[:1].isalpha()
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write a poem.", ("write", "verb")),
        ("  Can you please list three primes?", ("list", "verb")),
        ("What is ROUGE?", ("what", "question")),
        ("Given a list, sort it.", ("given", "other")),
        ("1. Translate this.", ("translate", "verb")),
        ("", None),
    ],
)
def test_leading_word_examples(text, expected):
    assert leading_word(text) == expected


def test_report_input_errors_are_one_line(generated, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"text": "Write a poem."}\n')
    no_column = CliRunner().invoke(main, ["report", str(generated), "--seeds", str(seeds)])
    assert no_column.exit_code == 1 and "has no instruction column" in no_column.output
    unwritable = CliRunner().invoke(
        main, ["report", str(generated), "--to", str(tmp_path / "no" / "such" / "r.html")]
    )
    assert unwritable.exit_code == 1 and "could not write the report" in unwritable.output
    assert "Traceback" not in no_column.output + unwritable.output


def test_reports_of_similar_names_do_not_collide(generated, tmp_path):
    for name in ("a.v1.parquet", "a.v2.parquet"):
        pl.read_parquet(generated).write_parquet(tmp_path / name)
        assert CliRunner().invoke(main, ["report", str(tmp_path / name)]).exit_code == 0
    assert {p.name for p in tmp_path.glob("*.html")} == {"a.v1.report.html", "a.v2.report.html"}


def test_show_of_a_missing_file_says_so(tmp_path):
    result = CliRunner().invoke(main, ["show", str(tmp_path / "nope.parquet")])
    assert result.exit_code == 1 and "nope.parquet does not exist" in result.output


def test_report_without_matplotlib_names_the_extra(generated, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    result = CliRunner().invoke(main, ["report", str(generated), "--to", "unused.html"])
    assert result.exit_code == 1 and "pip install 'promptflow_dsl[report]'" in result.output
    assert not Path("unused.html").exists()


def _section_of(page: str, title: str) -> str:
    return page.split(f"<h2>{title}</h2>", 1)[1].split("</section>", 1)[0]


def _report_of(frame: pl.DataFrame, folder: Path, *args: str) -> str:
    source = folder / "rows.parquet"
    frame.write_parquet(source)
    target = folder / "rows.html"
    result = CliRunner().invoke(main, ["report", str(source), "--to", str(target), *args])
    assert result.exit_code == 0, result.output
    return target.read_text()


HOSTILE = pl.DataFrame(
    {
        "instruction": ["Write a haiku.", "Explain <script>alert('x')</script> & why.", "Go."],
        "generation": ["Rain.", "Because <b>tags</b> & entities are text here.", "Gone."],
    }
)


def test_example_rows_are_escaped_and_show_the_first_and_the_longest(tmp_path):
    page = _report_of(HOSTILE, tmp_path)
    examples = _section_of(page, "Lengths (words)")
    assert "Example rows" in examples
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; why." in examples
    assert "&lt;b&gt;tags&lt;/b&gt; &amp; entities" in examples
    shown = re.findall(r'<p class="note">([a-z, ]+): row (\d+)</p>', examples)
    reasons = {why: int(row) for whys, row in shown for why in whys.split(", ")}
    assert set(reasons) == {"first", "random", "longest"}
    assert reasons["first"] == 1 and reasons["longest"] == 2  # the row with the most text
    assert 1 <= reasons["random"] <= HOSTILE.height
    assert "Write a haiku." in examples and "Rain." in examples


def test_the_random_example_is_the_same_on_every_report(tmp_path):
    frame = pl.DataFrame(
        {"instruction": [f"Write poem {i}." for i in range(50)], "generation": ["x"] * 50}
    )
    first = _report_of(frame, tmp_path)
    again = _report_of(frame, tmp_path)
    assert "random" in _section_of(first, "Lengths (words)") and first == again


def test_long_texts_in_examples_are_shortened(tmp_path):
    frame = HOSTILE.with_columns(pl.col("generation").str.replace("Gone.", "word " * 2_000))
    examples = _section_of(_report_of(frame, tmp_path), "Lengths (words)")
    assert "more characters)" in examples and "word " * 2_000 not in examples


def test_failures_verbs_and_seeds_have_example_rows(generated, tmp_path):
    target = tmp_path / "r.html"
    args = ["report", str(generated), "--seeds", str(SEEDS), "--to", str(target)]
    assert CliRunner().invoke(main, args).exit_code == 0
    page = target.read_text()
    frame = pl.read_parquet(generated)
    failed_row = frame["error"].is_not_null().arg_true()[0] + 1
    overview = _section_of(page, "Overview")
    assert "Example failures" in overview and f"row {failed_row:,}" in overview
    assert "MissingInput" in overview
    top_verb = measure(frame).leading_verbs[0][0]
    verbs = _section_of(page, "Leading verbs")
    assert f"Example instructions led by “{top_verb}”" in verbs
    shown = re.findall(r"<th>instruction</th><td>([^<]*)</td>", verbs)
    assert shown and all(leading_word(html.unescape(t))[0] == top_verb for t in shown)
    similarity = _section_of(page, "Similarity to the seeds")
    assert "Example instructions" in similarity and "ROUGE-L to the nearest seed" in similarity
