"""A server whose errors echo the API key: the key shows nowhere (real LiteLLM, real HTTP)."""

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import polars as pl
import pytest

import promptflow_dsl
from promptflow_dsl import Model, ProviderError, self_instruct, text_generation
from promptflow_dsl.testing import LoopbackServer, Reply

ROOT = Path(promptflow_dsl.__file__).resolve().parents[1]
KEY = "sk-live-0123456789abcdefXYZ"
ENV_KEY = "sk-proj-env9876543210zyxwvu"
MASKED = "sk-...***"


def echo_the_key(key: str) -> LoopbackServer:
    """A server that refuses every call with a 401 that repeats the key it was sent."""
    reply = Reply(status=401, content=f"Incorrect API key provided: {key}. Find your key.")
    return LoopbackServer(responder=lambda request: reply)


def test_a_direct_call_never_repeats_the_echoed_key():
    with echo_the_key(KEY) as server:
        model = Model("openai/loopback", api_base=server.api_base, api_key=KEY)
        with pytest.raises(ProviderError) as caught:
            self_instruct("Rivers shape valleys.", model=model)
    exc = caught.value
    assert MASKED in str(exc) and exc.status == 401
    assert KEY not in str(exc) and KEY not in repr(exc)
    # A traceback prints the provider's chained exceptions as well.
    printed = "".join(traceback.format_exception(exc))
    assert "AuthenticationError" in printed and KEY not in printed


def test_a_key_from_the_environment_is_masked_too(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    with echo_the_key(ENV_KEY) as server:
        model = Model("openai/loopback", api_base=server.api_base)
        with pytest.raises(ProviderError) as caught:
            text_generation("What is a river?", model=model)
    assert MASKED in str(caught.value) and ENV_KEY not in repr(caught.value)


def test_the_error_column_of_a_run_masks_the_key(tmp_path):
    frame = pl.DataFrame({"instruction": ["What is a river?", "Name a delta."]})
    with echo_the_key(KEY) as server:
        model = Model("openai/loopback", api_base=server.api_base, api_key=KEY)
        out = text_generation.step().run(frame, model=model)
    messages = out["error"].struct.field("message").to_list()
    assert len(messages) == 2 and all(MASKED in m and KEY not in m for m in messages)
    out.write_parquet(tmp_path / "o.parquet")
    assert KEY.encode() not in (tmp_path / "o.parquet").read_bytes()


def _promptflow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process, so --debug's traceback reaches stderr as printed."""
    return subprocess.run(
        [sys.executable, "-m", "promptflow_dsl", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("suffix", "debug", "rows", "exit_code"),
    [
        (".parquet", False, 3, 2),  # every row fails: the output holds the errors
        (".jsonl", True, 3, 2),
        (".parquet", True, 12, 1),  # the run stops early: --debug prints a traceback
        (".jsonl", False, 12, 1),
    ],
)
def test_promptflow_run_never_prints_or_writes_the_key(tmp_path, suffix, debug, rows, exit_code):
    source = tmp_path / "docs.jsonl"
    source.write_text(
        "".join(json.dumps({"instruction": f"Question {i}?"}) + "\n" for i in range(rows))
    )
    recipe = tmp_path / "recipe.py"
    recipe.write_text(
        "from promptflow_dsl import text_generation\n\nrecipe = text_generation.step()\n"
    )
    out = tmp_path / f"out{suffix}"
    with echo_the_key(ENV_KEY) as server:
        result = _promptflow(
            *(["--debug"] if debug else []),
            "run", str(recipe), "-i", str(source), "-o", str(out),
            "--model", "openai/loopback", "--api-base", server.api_base, "--no-cache",
            OPENAI_API_KEY=ENV_KEY,
        )  # fmt: skip
    printed = result.stdout + result.stderr
    assert result.returncode == exit_code, printed
    assert ENV_KEY not in printed
    if exit_code == 1 and debug:
        assert "Traceback" in printed and "AuthenticationError" in printed
    if exit_code == 2:
        written = _everything_written(tmp_path, out)
        assert MASKED in written and ENV_KEY not in written


def _everything_written(folder: Path, out: Path) -> str:
    """Every output file as text; a Parquet file decoded too (its pages are compressed)."""
    text = "".join(p.read_bytes().decode("latin-1") for p in folder.glob("out*") if p.is_file())
    if out.suffix == ".parquet":
        text += pl.read_parquet(out).write_ndjson()
        text += json.dumps(pl.read_parquet_metadata(out))
    return text
