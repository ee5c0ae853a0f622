"""A technique step on a real vLLM engine through Ray Data LLM: runs where vLLM, a GPU and
a model are at hand (``PROMPTFLOW_VLLM_MODEL``, a local path or a Hub id already
downloaded); skipped elsewhere, as on CI. tests/test_vllm_rows.py covers the row
functions everywhere."""

import os

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("vllm")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("vLLM processors need a GPU", allow_module_level=True)
MODEL = os.environ.get("PROMPTFLOW_VLLM_MODEL")
if not MODEL:
    pytest.skip("set PROMPTFLOW_VLLM_MODEL to a small chat model", allow_module_level=True)

from ray.data.llm import vLLMEngineProcessorConfig  # noqa: E402

from promptflow_dsl import build_vllm_processor, self_instruct  # noqa: E402

from ._helpers import collect  # noqa: E402


def test_self_instruct_on_vllm_writes_the_steps_columns(ray_cluster):
    config = vLLMEngineProcessorConfig(model_source=MODEL, batch_size=4, concurrency=1)
    processor = build_vllm_processor(self_instruct.step(num_instructions=2), config)
    documents = [{"input": f"Document {i}: rivers carve valleys."} for i in range(4)]
    out = collect(processor(ray.data.from_items(documents)))
    assert out.height == 4 and set(out["input"]) == {d["input"] for d in documents}
    done = out.filter(out["error"].is_null())
    assert done.height >= 1 and done["instructions"].list.len().min() >= 1
    assert set(done["model_name"]) == {MODEL}
