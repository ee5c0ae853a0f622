"""The technique library end to end: LiteLLM and Instructor over HTTP to the loopback server."""

import polars as pl

from promptflow_dsl import (
    Model,
    UserAssistantPair,
    dataset_instruction_response,
    evol_instruct,
    genstruct,
)
from promptflow_dsl.testing import LoopbackServer


def model_at(server: LoopbackServer, name: str = "openai/loopback-model", **options) -> Model:
    return Model(name, api_base=server.api_base, api_key="sk-test", **options)


def test_genstruct_sends_the_raw_prompt_to_the_completions_endpoint(loopback_server):
    loopback_server.script(["Why do tides happen?\n\n[[[Assistant]]] The moon pulls the sea."])
    pair = genstruct(
        "Tides", "The moon pulls the sea.", model=model_at(loopback_server), cache=False
    )
    assert pair.model_dump() == {
        "user": "Why do tides happen?",
        "assistant": "The moon pulls the sea.",
    }
    (request,) = loopback_server.requests
    assert request.endpoint == "completions"
    assert request.body["prompt"] == genstruct.render("Tides", "The moon pulls the sea.")
    assert "messages" not in request.body


def test_genstruct_structured_path_for_chat_models(loopback_server):
    loopback_server.script([{"user": "Why?", "assistant": "Because."}])
    model = model_at(loopback_server, mode="tools")
    pair = genstruct("Tides", "The moon pulls the sea.", model=model, cache=False)
    assert pair == UserAssistantPair(user="Why?", assistant="Because.")
    (request,) = loopback_server.requests
    assert (
        request.endpoint == "chat"
        and request.body["tools"][0]["function"]["name"] == "UserAssistantPair"
    )
    assert "[[[Title]]] Tides" in request.text


def test_genstruct_in_a_recipe_keeps_unparseable_replies_as_row_errors(loopback_server):
    loopback_server.script(["Q1?\n[[[Assistant]]] A1.", "no marker at all"])
    frame = pl.DataFrame({"title": ["One", "Two"], "content": ["First text.", "Second text."]})
    out = genstruct.step().run(
        frame, model=model_at(loopback_server), max_concurrency=1, cache=False
    )
    assert out["user"].to_list() == ["Q1?", None]
    error = out["error"][1]
    assert error["type"] == "ParseError" and error["raw_reply"] == "no marker at all"
    assert out["title"].to_list() == ["One", "Two"]


def test_evol_instruct_text_path_strips_echoed_headers(loopback_server):
    loopback_server.script(["#Rewritten Prompt#:\nSort a list of 10 numbers without built-ins."])
    result = evol_instruct("Sort a list.", model=model_at(loopback_server), cache=False)
    assert result.evolved_instruction == "Sort a list of 10 numbers without built-ins."
    assert "Sort a list." in loopback_server.requests[0].text


def test_evol_instruct_structured_path(loopback_server):
    loopback_server.script([{"rewritten_prompt": "Sort a list of 10 numbers."}])
    model = model_at(loopback_server, mode="json_schema")
    assert (
        evol_instruct("Sort a list.", model=model, cache=False).evolved_instruction
        == "Sort a list of 10 numbers."
    )


def test_elimination_keeps_the_previous_instruction_and_reevolves_it():
    replies = iter(
        [
            "Rewrite the given prompt: sort it.",  # round 1: copies the rewriting prompt
            "Sort a list of 10 numbers in place.",  # round 2: a real evolution
            "Not Equal",  # ...with information gain
            "Use insertion sort; here is how it works.",  # ...and a real answer
        ]
    )
    with LoopbackServer(responder=lambda request: next(replies)) as server:
        step = evol_instruct.step(
            num_evolutions=2, eliminate=True, store_evolutions=True, generate_answers=True
        )
        (row,) = step.run(
            pl.DataFrame({"instruction": ["Sort a list."]}), model=model_at(server), cache=False
        ).to_dicts()
        texts = [r.text for r in server.requests]
    assert row["eliminations"] == ["copied_rewriting_prompt", None]
    assert row["evolved_instructions"] == ["Sort a list of 10 numbers in place."]
    assert row["answers"] == ["Use insertion sort; here is how it works."]
    assert texts[1].endswith("Given prompt:\nSort a list.")  # round 2 evolved the original again


def test_evol_instruct_choices_do_not_depend_on_concurrency():
    frame = pl.DataFrame({"instruction": [f"Explain topic {i}." for i in range(12)]})
    step = evol_instruct.step(num_evolutions=2, seed=3)
    runs = []
    for limit in (1, 12):
        with LoopbackServer(latency=lambda r: r.uniform(0, 0.05)) as server:
            runs.append(step.run(frame, model=model_at(server), max_concurrency=limit, cache=False))
    assert runs[0]["mutations"].to_list() == runs[1]["mutations"].to_list()


def test_pipeline_puts_the_document_in_the_response_prompt(loopback_server):
    document = "Axolotls can regrow limbs, parts of the heart and even of the brain."
    recipe = dataset_instruction_response(
        model=model_at(loopback_server, "hosted_vllm/llama"), num_instructions=2
    )
    out = recipe.run([{"input": document}], cache=False)
    responses = [
        r for r in loopback_server.requests if "Base your answer on this document" in r.text
    ]
    assert len(responses) == out.height >= 1
    assert all(document in r.text for r in responses)
    assert out["response"].is_not_null().all()
    assert out["conversation"][0][0]["content"] == "You are a creative AI Assistant writer."
