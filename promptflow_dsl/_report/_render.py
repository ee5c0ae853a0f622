"""The report as one self-contained HTML file: tables, and plots embedded as PNG images.

Plots need matplotlib (the ``report`` extra), imported only here and drawn off-screen.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
from typing import Any

from .._errors import PromptflowError
from ._figures import (
    EMBEDDING_SAMPLE,
    EmbeddingFigures,
    Example,
    ReportFigures,
    ScoreFigures,
)

__all__ = ["render_report"]

_INSTALL = "pip install 'promptflow_dsl[report]'"
_BLUE, _ORANGE = "#3b6ea5", "#d9822b"
_SHOWN_CHARACTERS = 1_500  # of one text in an example: the longest row can be a book


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        message = f"the report draws its plots with matplotlib: {_INSTALL}"
        raise PromptflowError(message) from None
    matplotlib.use("Agg")  # files only: no display, no window
    import matplotlib.pyplot as plt

    return plt


def _whole_numbers(*axes: Any) -> None:
    """Counts and word lengths are whole: no tick at 7.5 instructions."""
    from matplotlib.ticker import MaxNLocator

    for axis in axes:
        axis.set_major_locator(MaxNLocator(integer=True))


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    figure.clf()
    _pyplot().close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _image(figure: Any, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(figure)}">'


def _lengths_plot(figures: ReportFigures) -> str:
    plt = _pyplot()
    series = [
        (figures.instruction_column, figures.instruction_lengths, _BLUE),
        (figures.response_column, figures.response_lengths, _ORANGE),
    ]
    series = [(name, values, colour) for name, values, colour in series if values]
    figure, axes = plt.subplots(1, len(series), figsize=(5.2 * len(series), 3.2), squeeze=False)
    for axis, (name, values, colour) in zip(axes[0], series, strict=True):
        low, high = min(values), max(values)
        whole_words = [x - 0.5 for x in range(low, high + 2)] if high - low <= 40 else 40
        axis.hist(values, bins=whole_words, color=colour, edgecolor="white")
        axis.set_title(f"{name}: words per text")
        axis.set_xlabel("words")
        axis.set_ylabel("texts")
        _whole_numbers(axis.xaxis, axis.yaxis)
    figure.tight_layout()
    return _image(figure, "length distributions")


def _verbs_plot(figures: ReportFigures) -> str:
    plt = _pyplot()
    verbs = figures.leading_verbs[::-1]
    figure, axis = plt.subplots(figsize=(6.4, 0.28 * len(verbs) + 1.0))
    axis.barh([v for v, _ in verbs], [n for _, n in verbs], color=_BLUE)
    axis.set_xlabel("instructions")
    axis.set_title("most common leading verbs")
    _whole_numbers(axis.xaxis)
    figure.tight_layout()
    return _image(figure, "leading verbs")


def _similarity_plot(figures: ReportFigures) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 3.2))
    axis.hist(
        figures.seed_similarity, bins=[i / 20 for i in range(21)], color=_BLUE, edgecolor="white"
    )
    axis.axvline(0.7, color=_ORANGE, linestyle="--", label="0.7 (the paper's filter)")
    axis.set_xlim(0, 1)
    axis.set_xlabel("ROUGE-L F to the most similar seed instruction")
    axis.set_ylabel("generated instructions")
    _whole_numbers(axis.yaxis)
    axis.legend(loc="upper right")
    figure.tight_layout()
    return _image(figure, "ROUGE-L similarity to the seeds")


def _nearest_plot(embeddings: EmbeddingFigures) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 3.2))
    axis.hist(embeddings.nearest, bins=40, color=_BLUE, edgecolor="white")
    axis.set_xlabel("cosine similarity to the nearest other row")
    axis.set_ylabel("rows")
    _whole_numbers(axis.yaxis)
    figure.tight_layout()
    return _image(figure, "nearest-neighbour similarity of the embeddings")


def _score_plot(score: ScoreFigures) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 3.0))
    whole = all(v.is_integer() for v in score.values)
    low, high = int(min(score.values)), int(max(score.values))
    bins: Any = [x - 0.5 for x in range(low, high + 2)] if whole and high - low <= 40 else 20
    axis.hist(score.values, bins=bins, color=_ORANGE, edgecolor="white")
    axis.set_title(f"{score.column}")
    axis.set_xlabel("score")
    axis.set_ylabel("values")
    _whole_numbers(axis.yaxis)
    if whole:
        _whole_numbers(axis.xaxis)
    figure.tight_layout()
    return _image(figure, f"histogram of {score.column}")


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _diversity(figures: ReportFigures) -> str:
    rows: list[tuple[str, Any]] = []
    for label, one, two in figures.distinct:
        rows += [(f"distinct-1 ({label})", _ratio(one)), (f"distinct-2 ({label})", _ratio(two))]
    note = (
        '<p class="note">Distinct-n: distinct word n-grams over all n-grams (1 when no '
        "n-gram repeats).</p>"
    )
    embeddings = figures.embeddings
    if embeddings is None:
        tail = (
            '<p class="note">No embedding column: add an <code>embed</code> step to see how '
            "far apart the rows are in meaning.</p>"
        )
        return note + _table(rows) + tail
    nearest = sorted(embeddings.nearest)
    rows += [
        (
            f"mean pairwise cosine distance ({embeddings.column})",
            f"{embeddings.mean_distance:.3f}",
        ),
        ("median nearest-neighbour cosine similarity", f"{statistics.median(nearest):.3f}"),
    ]
    sample = (
        f"all {embeddings.rows:,} rows"
        if embeddings.sample == embeddings.rows
        else f"a seeded sample of {embeddings.sample:,} of {embeddings.rows:,} rows "
        f"(at most {EMBEDDING_SAMPLE:,})"
    )
    about = (
        f'<p class="note">Embeddings of {sample} with an embedding. A distance near 0 means '
        "the rows say much the same; a nearest-neighbour similarity near 1, a near-duplicate "
        "(see dedup_semantic).</p>"
    )
    examples = _examples("Example rows", embeddings.examples)
    return note + _table(rows) + about + _nearest_plot(embeddings) + examples


def _scores(figures: ReportFigures) -> str:
    parts = []
    for score in figures.scores:
        if not score.values:
            parts.append(f'<p class="note">{html.escape(score.column)}: no value.</p>')
            continue
        summary = _table(
            [
                (f"{score.column}: values", f"{len(score.values):,}"),
                ("mean", f"{statistics.fmean(score.values):.3f}"),
                (
                    "min, median, max",
                    f"{min(score.values):g}, "
                    f"{statistics.median(score.values):g}, {max(score.values):g}",
                ),
            ]
        )
        examples = _examples(f"Example rows by {score.column}", score.examples)
        parts.append(summary + _score_plot(score) + examples)
    return "".join(parts)


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def _number(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _spread(values: list[int]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(values):g}, 90th percentile {p90}, max {ordered[-1]}"


def _overview(figures: ReportFigures) -> str:
    share = f" ({figures.failures / figures.rows:.1%})" if figures.rows else ""
    # The run's totals count every step's calls; a row's usage column only its last step's.
    # Without provenance (a file from elsewhere), the columns are what there is.
    measured = {
        "calls": None,
        "input_tokens": figures.input_tokens,
        "output_tokens": figures.output_tokens,
        "cost_usd": figures.cost_usd,
        "cache_hits": figures.cache_hits,
    }
    totals = {**measured, **(figures.provenance or {}).get("totals", {})}
    cost = totals["cost_usd"]
    rows: list[tuple[str, Any]] = [
        ("rows", f"{figures.rows:,}"),
        ("failed rows", f"{figures.failures:,}{share}"),
        ("calls", _number(totals["calls"])),
        ("tokens in", _number(totals["input_tokens"])),
        ("tokens out", _number(totals["output_tokens"])),
        ("cost", "n/a" if cost is None else f"${cost:.4f}"),
        ("cached replies", _number(totals["cache_hits"])),
    ]
    rows += [(f"model: {name}", f"{count:,} rows") for name, count in figures.models]
    rows += [(f"failure: {kind}", f"{count:,} rows") for kind, count in figures.failure_types]
    return _table(rows)


def _origin(provenance: dict[str, Any] | None) -> str:
    if not provenance:
        return "<p>This file carries no provenance (it was not written by promptflow run).</p>"
    recipe = provenance.get("recipe", {})
    rows = [
        ("recipe", f"{recipe.get('file')}: {recipe.get('expression')}"),
        ("overrides", ", ".join(recipe.get("overrides", [])) or "none"),
        ("started", provenance.get("started")),
        ("finished", provenance.get("finished")),
    ]
    rows += [(name, v) for name, v in provenance.get("versions", {}).items() if v]
    source = html.escape(recipe.get("source", ""))
    return _table(rows) + f"<details><summary>recipe source</summary><pre>{source}</pre></details>"


def _shortened(text: str) -> str:
    if len(text) <= _SHOWN_CHARACTERS:
        return text
    return f"{text[:_SHOWN_CHARACTERS]}… ({len(text) - _SHOWN_CHARACTERS:,} more characters)"


def _examples(title: str, examples: list[Example]) -> str:
    """Example rows as small tables, every text escaped (rows hold model output)."""
    if not examples:
        return ""
    tables = "".join(
        f'<p class="note">{html.escape(example.why)}: row {example.row:,}</p>'
        + _table([(name, _shortened(text)) for name, text in example.texts])
        for example in examples
    )
    return f'<h3>{html.escape(title)}</h3><div class="examples">{tables}</div>'


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { text-align: left; padding: .2rem .8rem .2rem 0; border-bottom: 1px solid #eee; }
th { font-weight: 600; } img { max-width: 100%; } pre { background: #f6f6f6; padding: .8rem;
overflow-x: auto; } .note { color: #666; }
h3 { font-size: 1rem; } .examples td { white-space: pre-wrap; }
"""


def render_report(figures: ReportFigures, *, title: str) -> str:
    """The report's HTML."""
    failures = _examples("Example failures", figures.failure_examples)
    sections = [_section("Overview", _overview(figures) + failures)]
    if figures.instruction_lengths or figures.response_lengths:
        table = _table(
            [
                (
                    f"instructions ({figures.instruction_column})",
                    _spread(figures.instruction_lengths),
                ),
                (f"responses ({figures.response_column})", _spread(figures.response_lengths)),
                ("distinct instructions", f"{figures.unique_instructions:,}"),
            ]
        )
        examples = _examples("Example rows", figures.examples)
        sections.append(_section("Lengths (words)", table + _lengths_plot(figures) + examples))
    else:
        note = (
            "Every row failed: there are no texts to measure."
            if figures.rows and figures.failures == figures.rows
            else "No instruction or response column found; name them with "
            "--instruction-column and --response-column."
        )
        sections.append(_section("Lengths (words)", f'<p class="note">{note}</p>'))
    if figures.leading_verbs:
        note = (
            f'<p class="note">The first word of each distinct imperative instruction, after '
            f"polite openings such as &ldquo;Please&rdquo;. {figures.questions:,} instructions "
            f"are questions and are not counted.</p>"
        )
        top = figures.leading_verbs[0][0]
        examples = _examples(f"Example instructions led by “{top}”", figures.verb_examples)
        sections.append(_section("Leading verbs", note + _verbs_plot(figures) + examples))
    if figures.distinct or figures.embeddings is not None:
        sections.append(_section("Diversity", _diversity(figures)))
    if figures.scores:
        sections.append(_section("Scores", _scores(figures)))
    if figures.seed_similarity:
        scores = figures.seed_similarity
        above = sum(1 for s in scores if s > 0.7)
        note = (
            f'<p class="note">For each of {len(scores):,} distinct instructions, the ROUGE-L '
            f"F-measure to the most similar of {figures.seed_count:,} seed instructions (as in "
            f"the Self-Instruct paper's analysis). Mean {statistics.fmean(scores):.3f}; "
            f"{above:,} above 0.7.</p>"
        )
        examples = _examples("Example instructions", figures.similarity_examples)
        plot = _similarity_plot(figures)
        sections.append(_section("Similarity to the seeds", note + plot + examples))
    else:
        note = "Pass --seeds SEEDS.jsonl to compare the instructions with the seed instructions."
        sections.append(_section("Similarity to the seeds", f'<p class="note">{note}</p>'))
    sections.append(_section("Origin", _origin(figures.provenance)))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )
