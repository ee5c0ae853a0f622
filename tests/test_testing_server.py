"""The loopback OpenAI-compatible server: raw HTTP first, then the real LiteLLM + Instructor."""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from promptflow_dsl.testing import (
    Faults,
    LoopbackServer,
    RecordedRequest,
    Reply,
    ServerStats,
    default_responder,
)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# No proxy, whatever the environment says: the server is on loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

TOOL = {
    "type": "function",
    "function": {
        "name": "InstructionList",
        "description": "Instructions.",
        "parameters": {
            "type": "object",
            "properties": {
                "instructions": {"type": "array", "items": {"type": "string"}},
                "count": {"type": "integer", "minimum": 1, "maximum": 5},
                "level": {"enum": ["easy", "hard"]},
            },
            "required": ["instructions", "count", "level"],
        },
    },
}


def post(
    server: LoopbackServer,
    path: str = "/chat/completions",
    body: dict[str, Any] | None = None,
    *,
    timeout: float = 5.0,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """POST to the server; returns status, headers and the body bytes (errors included)."""
    if body is None:
        body = {"model": "test-model", "messages": [{"role": "user", "content": "Hello there"}]}
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.api_base + path,
        data=data,
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-secret"},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def chat(server: LoopbackServer, **body: Any) -> dict[str, Any]:
    body = {"model": "test-model", "messages": [{"role": "user", "content": "Hi"}], **body}
    status, _, data = post(server, body=body)
    assert status == 200, data
    return json.loads(data)


def wait_until(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --- raw HTTP ------------------------------------------------------------------------


def test_scripted_replies_are_served_in_order(loopback_server):
    loopback_server.script(["a text reply", {"instructions": ["x"]}, Reply(status=500)])
    first = chat(loopback_server)
    assert first["object"] == "chat.completion" and first["model"] == "test-model"
    assert first["choices"][0]["message"] == {"role": "assistant", "content": "a text reply"}
    assert first["choices"][0]["finish_reason"] == "stop"
    usage = first["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    second = chat(loopback_server)
    assert json.loads(second["choices"][0]["message"]["content"]) == {"instructions": ["x"]}
    status, _, data = post(loopback_server)
    assert status == 500 and "error" in json.loads(data)
    # The queue is empty now: the default responder answers.
    assert chat(loopback_server)["choices"][0]["message"]["content"].count("\n") == 2
    assert loopback_server.stats.by_status == {200: 3, 500: 1}


def test_a_json_reply_becomes_a_tool_call_when_the_request_has_tools(loopback_server):
    loopback_server.script([{"instructions": ["x"]}, Reply(json={"a": 1}, finish_reason="length")])
    choice = chat(loopback_server, tools=[TOOL])["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "InstructionList"
    assert json.loads(call["function"]["arguments"]) == {"instructions": ["x"]}
    named = {"type": "function", "function": {"name": "Other"}}
    choice = chat(loopback_server, tools=[TOOL], tool_choice=named)["choices"][0]
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "Other"
    assert choice["finish_reason"] == "length"


def test_default_responder_fabricates_valid_deterministic_tool_arguments(loopback_server):
    messages = [{"role": "user", "content": "Write instructions about volcanoes and lava."}]
    replies = [chat(loopback_server, messages=messages, tools=[TOOL]) for _ in range(2)]
    calls = [r["choices"][0]["message"]["tool_calls"][0]["function"] for r in replies]
    assert calls[0] == calls[1]  # deterministic per request
    arguments = json.loads(calls[0]["arguments"])
    assert set(arguments) == {"instructions", "count", "level"}
    assert all(isinstance(s, str) and s for s in arguments["instructions"])
    assert 1 <= arguments["count"] <= 5 and arguments["level"] in ("easy", "hard")
    assert any("volcanoes" in s or "lava" in s for s in arguments["instructions"])
    other = chat(loopback_server, messages=[{"role": "user", "content": "Other"}], tools=[TOOL])
    assert other["choices"][0]["message"]["tool_calls"][0]["function"] != calls[0]


def test_default_responder_finds_the_schema_of_json_modes():
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    system = f"Answer as JSON matching this schema:\n\n{json.dumps(schema)}\n\nThanks {{not json}}"
    in_prompt = RecordedRequest(
        "chat",
        {"messages": [{"role": "system", "content": system}, {"role": "user", "content": "Q"}]},
    )
    assert set(default_responder(in_prompt)) == {"answer"}
    as_format = RecordedRequest(
        "chat",
        {
            "messages": [{"role": "user", "content": "Q"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "X", "schema": schema},
            },
        },
    )
    assert isinstance(default_responder(as_format)["answer"], int)
    json_object = RecordedRequest(
        "chat",
        {
            "messages": [{"role": "user", "content": "Q"}],
            "response_format": {"type": "json_object"},
        },
    )
    assert isinstance(default_responder(json_object), dict)
    text = RecordedRequest("completions", {"prompt": "Tell me about rivers"})
    assert len(default_responder(text).splitlines()) == 3
    assert default_responder(text) == default_responder(text) != default_responder(text, 1)


def test_429_carries_retry_after_and_scripted_replies_are_never_faulted():
    with LoopbackServer(faults=Faults(rate_429=1.0, retry_after=2.0)) as server:
        status, headers, data = post(server)
        assert status == 429 and headers["Retry-After"] == "2"
        assert json.loads(data)["error"]["code"] == "rate_limit_exceeded"
        server.script(["fine"])
        assert chat(server)["choices"][0]["message"]["content"] == "fine"
        assert server.stats.by_status == {429: 1, 200: 1}


def test_fault_rates_follow_the_seeded_rng():
    faults = Faults(rate_429=0.25, rate_500=0.25, rate_malformed=0.25)

    def statuses(seed: int) -> list[int]:
        with LoopbackServer(faults=faults, seed=seed) as server:
            for _ in range(40):
                post(server)
            return [s for s, n in sorted(server.stats.by_status.items()) for _ in range(n)]

    first = statuses(7)
    assert first == statuses(7)
    assert {429, 500, 200} == set(first) and first.count(200) > first.count(429) / 2
    with pytest.raises(ValueError, match="sum to at most 1"):
        Faults(rate_429=0.6, rate_500=0.6)


def test_malformed_bodies():
    with LoopbackServer(faults=Faults(rate_malformed=1.0)) as server:
        status, headers, data = post(server)
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        with pytest.raises(json.JSONDecodeError):
            json.loads(data)
        server.script([Reply(raw_body='{"id": "trunc')])
        assert post(server)[2] == b'{"id": "trunc'


def test_in_flight_counting_with_latency_and_concurrent_clients():
    with LoopbackServer(latency=0.3) as server:
        barrier = threading.Barrier(20)
        statuses: list[int] = []
        usages: list[dict[str, int]] = []

        def worker() -> None:
            barrier.wait()
            status, _, body = post(server)
            statuses.append(status)
            usages.append(json.loads(body)["usage"])

        threads = [threading.Thread(target=worker) for _ in range(20)]
        for thread in threads:
            thread.start()
        assert wait_until(lambda: server.stats.in_flight == 20)
        for thread in threads:
            thread.join()
        stats = server.stats
        assert statuses == [200] * 20
        assert stats == ServerStats(
            requests=20,
            in_flight=0,
            max_in_flight=20,
            by_status={200: 20},
            by_endpoint={"chat": 20},
            # what the replies told the clients they used: what a provider bills
            billed_input_tokens=sum(u["prompt_tokens"] for u in usages),
            billed_output_tokens=sum(u["completion_tokens"] for u in usages),
        )
        assert stats.billed_output_tokens > 0


def test_several_hundred_concurrent_connections():
    import aiohttp

    async def burst(server: LoopbackServer, count: int) -> list[int]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> int:
                body = {"model": "m", "messages": [{"role": "user", "content": f"n {i}"}]}
                url = server.api_base + "/chat/completions"
                async with session.post(url, json=body) as response:
                    await response.read()
                    return response.status

            return await asyncio.gather(*(one(i) for i in range(count)))

    with LoopbackServer(latency=1.0) as server:
        statuses = asyncio.run(burst(server, 300))
        assert statuses == [200] * 300
        # Most are in flight together (a loaded CI machine opens connections more slowly).
        assert server.stats.max_in_flight > 100 and server.stats.in_flight == 0


def test_latency_callable_draws_from_the_server_rng():
    draws: list[float] = []

    def latency(rng) -> float:
        draws.append(rng.lognormvariate(math.log(0.01), 0.5))
        return draws[-1]

    with LoopbackServer(latency=latency, seed=3) as server:
        post(server)
        post(server)
        first = list(draws)
        server.reset()
        post(server)
    assert len(first) == 2 and draws[2] == first[0]  # reset reseeds


def test_a_hung_request_frees_its_slot_when_the_client_gives_up():
    with LoopbackServer(faults=Faults(rate_hang=1.0, hang_seconds=30)) as server:
        with pytest.raises(TimeoutError):
            post(server, timeout=0.2)
        assert wait_until(lambda: server.stats.in_flight == 0)
        assert server.stats.max_in_flight == 1 and server.stats.by_status == {}


def test_stop_is_quick_with_hanging_requests_in_flight():
    server = LoopbackServer(faults=Faults(rate_hang=1.0, hang_seconds=60)).start()
    threads = [threading.Thread(target=lambda: post(server, timeout=10)) for _ in range(3)]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: server.stats.in_flight == 3)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    for thread in threads:
        thread.join(timeout=5)
        assert not thread.is_alive()
    server.stop()  # twice is fine
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.api_base


def test_completions_endpoint_and_models(loopback_server):
    status, _, data = post(
        loopback_server, "/completions", {"model": "davinci", "prompt": "Once upon a time"}
    )
    reply = json.loads(data)
    assert status == 200 and reply["object"] == "text_completion"
    (choice,) = reply["choices"]
    assert choice["text"].count("\n") == 2 and choice["logprobs"] is None
    assert reply["usage"]["prompt_tokens"] > 0
    loopback_server.script([Reply(content="The end.", finish_reason="length")])
    _, _, data = post(loopback_server, "/completions", {"prompt": ["a", "b"]})
    choice = json.loads(data)["choices"][0]
    assert (choice["text"], choice["finish_reason"]) == ("The end.", "length")
    assert [r.text for r in loopback_server.requests] == ["Once upon a time", "a\nb"]
    assert loopback_server.stats.by_endpoint == {"completions": 2}
    with _OPENER.open(loopback_server.api_base + "/models", timeout=5) as response:
        assert json.load(response)["object"] == "list"
    assert loopback_server.stats.requests == 2  # /models is not counted


def test_requests_are_recorded_without_credentials(loopback_server):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Describe rain."}]},
    ]
    chat(loopback_server, messages=messages, temperature=0.5)
    (request,) = loopback_server.requests
    assert request.endpoint == "chat" and request.body["temperature"] == 0.5
    assert request.text == "Be brief.\nDescribe rain."
    assert "authorization" not in request.headers and "sk-secret" not in str(request)
    assert request.headers["content-type"] == "application/json"


def test_n_choices_stream_and_bad_bodies(loopback_server):
    reply = chat(loopback_server, n=3)
    texts = [c["message"]["content"] for c in reply["choices"]]
    assert [c["index"] for c in reply["choices"]] == [0, 1, 2] and len(set(texts)) == 3
    loopback_server.script(["streamed words here"])
    status, headers, data = post(
        loopback_server,
        body={"messages": [], "stream": True, "stream_options": {"include_usage": True}},
    )
    assert headers["Content-Type"].startswith("text/event-stream")
    events = [line[6:] for line in data.decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "streamed words here" and "usage" in chunks[-1]
    assert post(loopback_server, raw=b"not json")[0] == 400


def test_responder_none_falls_back_and_errors_become_500s():
    def responder(request: RecordedRequest):
        if "boom" in request.text:
            message = "boom"
            raise RuntimeError(message)
        return "custom" if "custom" in request.text else None

    with LoopbackServer(responder=responder) as server:
        ask = [{"role": "user", "content": "custom please"}]
        assert chat(server, messages=ask)["choices"][0]["message"]["content"] == "custom"
        assert chat(server)["choices"][0]["message"]["content"].count("\n") == 2
        status, _, data = post(server, body={"messages": [{"role": "user", "content": "boom"}]})
        assert status == 500 and "boom" in json.loads(data)["error"]["message"]


def test_reset_clears_queue_counters_and_requests(loopback_server):
    loopback_server.script(["one", "two"])
    chat(loopback_server)
    loopback_server.reset()
    assert loopback_server.stats == ServerStats()
    assert loopback_server.requests == []
    assert chat(loopback_server)["choices"][0]["message"]["content"] != "two"


def test_reply_and_script_validation(loopback_server):
    with pytest.raises(ValueError, match="at most one"):
        Reply(content="x", json={})
    with pytest.raises(TypeError, match="str, a dict or a Reply"):
        loopback_server.script([42])
    assert loopback_server.api_base == loopback_server.url + "/v1"
    assert loopback_server.url.startswith("http://127.0.0.1:")


# --- the real LiteLLM + Instructor -----------------------------------------------------


@pytest.fixture(scope="module")
def llm():
    import instructor
    import litellm

    litellm.suppress_debug_info = True
    return litellm, instructor


@pytest.mark.parametrize("mode", ["TOOLS", "JSON", "JSON_SCHEMA", "MD_JSON"])
def test_instructor_modes_through_litellm(llm, loopback_server, mode):
    from pydantic import BaseModel

    litellm, instructor = llm

    class Out(BaseModel):
        instructions: list[str]
        difficulty: int

    client = instructor.from_litellm(litellm.completion, mode=getattr(instructor.Mode, mode))
    kwargs = dict(
        model="openai/test-model",
        api_base=loopback_server.api_base,
        api_key="sk-test",
        messages=[{"role": "user", "content": "Rivers shape valleys."}],
        response_model=Out,
        max_retries=0,
    )
    loopback_server.script([{"instructions": ["Explain erosion."], "difficulty": 3}])
    scripted = client.chat.completions.create(**kwargs)
    assert scripted.model_dump() == {"instructions": ["Explain erosion."], "difficulty": 3}
    fabricated = client.chat.completions.create(**kwargs)  # the default responder
    assert fabricated.instructions and all(fabricated.instructions)
    first, second = loopback_server.requests
    assert first.endpoint == "chat" and first.body["model"] == "test-model"
    assert ("tools" in first.body) == (mode == "TOOLS")
    assert "Rivers shape valleys." in first.text


def test_text_completion_through_litellm_reaches_completions(llm, loopback_server):
    litellm, _ = llm
    loopback_server.script(["A completion."])
    response = litellm.text_completion(
        model="text-completion-openai/test-model",
        api_base=loopback_server.api_base,
        api_key="sk-test",
        prompt="Say something",
    )
    assert response.choices[0].text == "A completion."
    assert response.usage.prompt_tokens > 0
    (request,) = loopback_server.requests
    assert request.endpoint == "completions" and request.text == "Say something"


def test_md_json_over_the_completions_endpoint(llm, loopback_server):
    from pydantic import BaseModel

    litellm, instructor = llm

    class Out(BaseModel):
        instructions: list[str]

    client = instructor.from_litellm(litellm.completion, mode=instructor.Mode.MD_JSON)
    out = client.chat.completions.create(
        model="text-completion-openai/test-model",
        api_base=loopback_server.api_base,
        api_key="sk-test",
        messages=[{"role": "user", "content": "Rivers."}],
        response_model=Out,
        max_retries=0,
    )
    assert out.instructions
    assert [r.endpoint for r in loopback_server.requests] == ["completions"]


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic, about LiteLLM's own types
def test_litellm_sees_errors_retry_after_and_streams(llm):
    litellm, _ = llm
    with LoopbackServer() as server:
        kwargs = dict(
            model="openai/test-model",
            api_base=server.api_base,
            api_key="sk-test",
            messages=[{"role": "user", "content": "x"}],
        )
        server.script([Reply(status=429, headers={"Retry-After": "0.2"})])
        with pytest.raises(litellm.RateLimitError):
            litellm.completion(num_retries=0, **kwargs)
        server.script([Reply(status=429, headers={"Retry-After": "0.2"}), "after retry"])
        started = time.monotonic()
        response = litellm.completion(num_retries=1, **kwargs)
        assert response.choices[0].message.content == "after retry"
        assert time.monotonic() - started >= 0.2
        server.script([Reply(content="cut", finish_reason="length")])
        assert litellm.completion(**kwargs).choices[0].finish_reason == "length"
        server.script(["one two three"])
        chunks = litellm.completion(stream=True, **kwargs)
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two three"
        server.script([Reply(delay=5)])
        with pytest.raises(litellm.Timeout):
            litellm.completion(timeout=0.3, num_retries=0, **kwargs)
