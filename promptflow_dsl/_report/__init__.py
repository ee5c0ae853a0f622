"""``promptflow report``: a self-contained HTML report of a generated dataset.

It shows rows, failures, tokens, dollars and models; the length distributions of the
instructions and responses; the most common leading verbs; and, given seed instructions,
the histogram of ROUGE-L similarity to the most similar seed, as in the Self-Instruct
paper's analysis; its diversity (distinct-1 and distinct-2 of the texts and, when the rows
have embeddings, the mean pairwise cosine distance and each row's nearest-neighbour
similarity, on a seeded sample); histograms of score and rating columns; and for each,
example rows (the first, a seeded random one, the longest; the closest pair and the most
isolated row; the highest and lowest scores).
"""

from __future__ import annotations

from pathlib import Path

from ._figures import Example, ReportFigures, leading_word, measure, seed_instructions
from ._render import render_report

__all__ = [
    "Example",
    "ReportFigures",
    "build_report",
    "leading_word",
    "measure",
    "render_report",
]


def build_report(
    output: Path,
    *,
    seeds: Path | None = None,
    instruction_column: str | None = None,
    response_column: str | None = None,
) -> str:
    """The HTML report of an output file or datasets folder (*seeds*: a file of seed tasks)."""
    from .._io.frames import read_frame
    from .._io.provenance import read_provenance

    frame = read_frame(output)
    seed_texts = seed_instructions(read_frame(seeds), seeds) if seeds is not None else None
    figures = measure(
        frame,
        provenance=read_provenance(output),
        seeds=seed_texts,
        instruction_column=instruction_column,
        response_column=response_column,
    )
    return render_report(figures, title=f"Dataset report: {output.name}")
