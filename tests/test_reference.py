from pathlib import Path

from click.testing import CliRunner

from promptflow_dsl._reference import TECHNIQUES, render_index, render_reference
from promptflow_dsl.cli import main

PAGES = Path(__file__).resolve().parents[1] / "docs" / "reference"


def test_reference_pages_are_up_to_date():
    """Regenerate with: promptflow docs docs/reference"""
    assert (PAGES / "index.md").read_text() == render_index()
    for name, technique in TECHNIQUES.items():
        assert (PAGES / f"{name}.md").read_text() == render_reference(technique), (
            f"{name}.md is stale"
        )


def test_every_page_has_signature_attributes_columns_example_and_reference():
    for name, technique in TECHNIQUES.items():
        page = render_reference(technique)
        for heading in ("## Signature", "## Columns", "## Result type", "## In a recipe"):
            assert heading in page, (name, heading)
        assert "arXiv" in page or "Genstruct-7B" in page or name == "text_generation"


def test_cli_lists_and_prints():
    runner = CliRunner()
    listing = runner.invoke(main, ["techniques"])
    assert listing.exit_code == 0 and all(name in listing.output for name in TECHNIQUES)
    page = runner.invoke(main, ["techniques", "genstruct"])
    assert page.exit_code == 0 and "[[[Title]]]" in page.output
    missing = runner.invoke(main, ["techniques", "nope"])
    assert missing.exit_code == 1 and "no technique 'nope'" in missing.output
