"""Keys stay out of messages, stored recipe sources, reports and URLs."""

import json
import string
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import assume, given
from hypothesis import strategies as st

from promptflow_dsl import (
    CredentialsInURLError,
    Model,
    ParseError,
    PromptflowError,
    TemplateError,
)
from promptflow_dsl._secrets import redact_source
from promptflow_dsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "self_instruct.py"
DOCUMENTS = ROOT / "recipes" / "data" / "documents.jsonl"


# -- error messages -----------------------------------------------------------------------


def test_errors_mask_keys_from_secret_named_environment_variables(monkeypatch):
    monkeypatch.setenv("EXAMPLE_API_KEY", "example-secret-0042")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "not-a-secret-value")  # not a secret name
    error = TemplateError("bad: example-secret-0042 and not-a-secret-value")
    assert "example-secret-0042" not in str(error) and "***" in str(error)
    assert "not-a-secret-value" in str(error)


def test_a_raw_reply_that_echoes_a_model_key_is_masked():
    Model("openai/x", api_key="model-key-0123456789abcdef")
    error = ParseError("nothing", raw_text="key: model-key-0123456789abcdef", expected="a list")
    assert "model-key-0123456789abcdef" not in error.raw_text
    assert error.raw_text == "key: mod...***"


def test_values_too_short_to_be_keys_are_left_alone(monkeypatch):
    monkeypatch.setenv("SHORT_TOKEN", "sk")
    Model("openai/x", api_key="1")
    error = TemplateError("sk 1 sk")
    assert str(error) == "sk 1 sk"


def test_a_model_repr_hides_its_key_and_secret_params():
    model = Model(
        "openai/x",
        api_key="sk-live-abcdef123456",
        params={"top_p": 0.9, "extra_headers": {"Authorization": "Bearer tok-0123456789"}},
    )
    shown = repr(model)
    assert "sk-live" not in shown and "tok-0123456789" not in shown
    assert "'top_p': 0.9" in shown and "'Authorization': '***'" in shown


# -- credentials in a URL -------------------------------------------------------------------


@pytest.mark.parametrize(
    "api_base",
    [
        "http://user:hunter2-pass@localhost:8000/v1",
        "https://sk-token-0123456789@api.example.com/v1",
        "localhost:8000/v1?api_key=hunter2-pass",
    ],
)
def test_a_model_refuses_credentials_in_api_base(api_base):
    with pytest.raises(CredentialsInURLError) as caught:
        Model("openai/x", api_base=api_base)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, PromptflowError)
    assert "api_base" in message and "must not carry credentials" in message
    assert "OPENAI_API_KEY" in message and "Model(api_key=...)" in message
    assert "hunter2" not in message and "sk-token" not in message and "\n" not in message
    with pytest.raises(CredentialsInURLError):
        Model("openai/x").replace(api_base=api_base)


def test_a_plain_api_base_is_fine():
    assert Model("openai/x", api_base="http://127.0.0.1:8000/v1").api_base.endswith("/v1")


@pytest.mark.parametrize(
    "option",
    [
        ["--api-base", "http://me:hunter2-pass@127.0.0.1:9/v1"],
        ["--set", "text_generation.model.api_base=http://me:hunter2-pass@127.0.0.1:9/v1"],
    ],
)
def test_promptflow_run_refuses_credentials_in_a_url(tmp_path, option):
    out = tmp_path / "o.parquet"
    args = ["run", str(RECIPE), "-i", str(DOCUMENTS), "-o", str(out), "--limit", "1"]
    result = CliRunner().invoke(main, [*args, "--model", "openai/x", *option])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "credentials" in result.output and "hunter2" not in result.output
    assert not out.exists() and not (tmp_path / "o.parquet.parts").exists()


# -- recipe sources -------------------------------------------------------------------------

SECRETS = {
    "literal": "sk-live-abcdef123456",
    "hub": "hf_AbCdEfGhIjKlMnOpQrStUv",
    "keyword": "model-key-in-a-keyword",
    "assigned": "plain-token-value-7",
    "password": "correct-horse-battery",
}
KEYED_RECIPE = f"""\
import os

from promptflow_dsl import Model, text_generation

OPENAI_API_KEY = "{SECRETS["literal"]}"
os.environ.setdefault("HF_TOKEN", "{SECRETS["hub"]}")
backup = Model("openai/gpt-4o-mini", api_key="{SECRETS["keyword"]}")
token = "{SECRETS["assigned"]}"
settings = {{"db_password": "{SECRETS["password"]}", "model": "gpt-4o-mini"}}

recipe = text_generation.step()
"""


@pytest.fixture
def keyed_output(tmp_path):
    recipe = tmp_path / "keyed.py"
    recipe.write_text(KEYED_RECIPE)
    source = tmp_path / "in.jsonl"
    source.write_text('{"instruction": "What is a river?"}\n')
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(main, ["run", str(recipe), "-i", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _leaked(text: str) -> list[str]:
    return [name for name, secret in SECRETS.items() if secret in text]


def test_provenance_stores_the_recipe_source_without_its_keys(keyed_output):
    stored = pl.read_parquet_metadata(keyed_output)["promptflow_dsl"]
    assert _leaked(stored) == [] and _leaked(keyed_output.read_bytes().decode("latin-1")) == []
    source = json.loads(stored)["recipe"]["source"]
    compile(source, "keyed.py", "exec")  # still Python
    assert 'api_key="***"' in source and '"model": "gpt-4o-mini"' in source
    assert "recipe = text_generation.step()" in source


def test_show_prints_provenance_without_keys(keyed_output):
    result = CliRunner().invoke(main, ["show", str(keyed_output)])
    assert result.exit_code == 0, result.output
    assert "text_generation.step()" in result.output and _leaked(result.output) == []


def test_the_report_shows_the_source_without_keys(keyed_output, tmp_path):
    pytest.importorskip("matplotlib")
    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(keyed_output), "--to", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "text_generation.step()" in text and _leaked(text) == []


def test_provenance_written_before_is_masked_when_read(tmp_path):
    out = tmp_path / "old.jsonl"
    out.write_text('{"instruction": "x"}\n')
    record = {"recipe": {"file": "r.py", "source": KEYED_RECIPE}, "steps": []}
    Path(f"{out}.meta.json").write_text(json.dumps(record))
    result = CliRunner().invoke(main, ["show", str(out)])
    assert result.exit_code == 0 and _leaked(result.output) == []


SECRET_NAMES = ["OPENAI_API_KEY", "api_key", "HF_TOKEN", "apiKey", "client_secret", "password"]
ASSIGNMENTS = [
    '{name} = "{value}"',
    '{name}: str = "{value}"',
    'Model("openai/x", {name}="{value}")',
    'settings = {{"{name}": "{value}", "model": "openai/x"}}',
    'os.environ["{name}"] = "{value}"',
]


@given(
    name=st.sampled_from(SECRET_NAMES),
    form=st.sampled_from(ASSIGNMENTS),
    value=st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=40),
)
def test_a_literal_given_to_a_secret_name_is_masked_and_the_source_still_parses(name, form, value):
    line = form.format(name=name, value=value)
    source = f'model = "openai/x"\n{line}\nrecipe = 1\n'
    assume(value not in source.replace(f'"{value}"', ""))  # the value occurs only as itself
    redacted = redact_source(source)
    assert value not in redacted.replace('model = "openai/x"', "")
    compile(redacted, "recipe.py", "exec")
    assert redacted.startswith('model = "openai/x"\n') and redacted.endswith("recipe = 1\n")
    assert redact_source(redacted) == redacted  # stable
