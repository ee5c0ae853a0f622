"""The loopback server's ``POST /v1/embeddings``: raw HTTP, then the real LiteLLM."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import urllib.error
import urllib.request
from typing import Any

import pytest

from promptflow_dsl._vectors import cosine, hashed_embedding
from promptflow_dsl.testing import Faults, LoopbackServer, Quirks, Reply

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post(server: LoopbackServer, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        server.api_base + "/embeddings",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-secret"},
    )
    try:
        with _OPENER.open(request, timeout=5) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_a_list_of_texts_gets_one_unit_vector_each_in_order(loopback_server):
    texts = ["Write a poem about the sea.", "Write a poem about the sea!", "Name a river."]
    status, _, body = post(loopback_server, {"model": "text-embedding-3-small", "input": texts})
    assert status == 200
    assert body["object"] == "list" and body["model"] == "text-embedding-3-small"
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 256 for d in body["data"])
    vectors = [d["embedding"] for d in body["data"]]
    assert vectors[0] == pytest.approx(hashed_embedding(texts[0]), abs=1e-7)  # float32 values
    assert cosine(vectors[0], vectors[1]) > 0.9 > cosine(vectors[0], vectors[2])
    tokens = body["usage"]["prompt_tokens"]
    assert tokens == body["usage"]["total_tokens"] > 0
    stats = loopback_server.stats
    assert stats.requests == 1 and stats.by_endpoint == {"embeddings": 1}
    assert stats.billed_input_tokens == tokens and stats.billed_output_tokens == 0
    (recorded,) = loopback_server.requests
    assert recorded.endpoint == "embeddings" and recorded.body["input"] == texts
    assert "authorization" not in recorded.headers  # credentials are never recorded


def test_one_string_dimensions_and_base64(loopback_server):
    body = {"model": "m", "input": "hello", "dimensions": 8, "encoding_format": "base64"}
    status, _, reply = post(loopback_server, body)
    assert status == 200
    packed = base64.b64decode(reply["data"][0]["embedding"])
    values = struct.unpack("<8f", packed)
    assert list(values) == pytest.approx(hashed_embedding("hello", 8), abs=1e-7)
    _, _, same = post(loopback_server, {"model": "m", "input": ["hello"], "dimensions": 8})
    assert same["data"][0]["embedding"] == list(values)  # deterministic, float32 either way


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"model": "m", "input": []}, "non-empty list"),
        ({"model": "m", "input": [1, 2]}, "list of strings"),
        ({"model": "m"}, "'input' must be"),
        ({"model": "m", "input": "x", "dimensions": 0}, "'dimensions'"),
        ({"model": "m", "input": "x", "encoding_format": "int8"}, "'encoding_format'"),
    ],
)
def test_bad_requests_get_openais_400(loopback_server, body, says):
    status, _, reply = post(loopback_server, body)
    assert status == 400 and says in reply["error"]["message"]
    assert reply["error"]["type"] == "invalid_request_error"


def test_faults_and_scripts_apply_to_embeddings():
    with LoopbackServer(faults=Faults(rate_429=1.0, retry_after=2)) as server:
        status, headers, reply = post(server, {"model": "m", "input": "x"})
        assert status == 429 and headers["Retry-After"] == "2"
        assert reply["error"]["code"] == "rate_limit_exceeded"
    with LoopbackServer() as server:
        server.script([Reply(status=503), Reply(content="ignored: vectors are computed")])
        assert post(server, {"model": "m", "input": "x"})[0] == 503
        status, _, reply = post(server, {"model": "m", "input": "x"})
        assert status == 200 and len(reply["data"][0]["embedding"]) == 256
        assert server.stats.by_status == {503: 1, 200: 1}


def test_a_server_that_omits_usage_still_bills_it():
    with LoopbackServer(quirks=Quirks(omits_usage=True)) as server:
        status, _, reply = post(server, {"model": "m", "input": ["a few words here"]})
        assert status == 200 and "usage" not in reply
        assert server.stats.billed_input_tokens == 4


def test_litellm_embeds_through_the_server(loopback_server):
    import litellm

    async def call() -> Any:
        return await litellm.aembedding(
            model="openai/text-embedding-3-small",
            input=["Rivers carve valleys.", "Rivers carve valleys!"],
            api_base=loopback_server.api_base,
            api_key="sk-test",
        )

    response = asyncio.run(call())
    first, second = (item["embedding"] for item in response.data)
    assert cosine(first, second) > 0.9
    assert response.usage.prompt_tokens == loopback_server.stats.billed_input_tokens
