import polars as pl

from promptflow_dsl import Model, dataset_instruction_response
from promptflow_dsl.pipelines.dataset_instruction_response import (
    DEFAULT_MODEL,
    DEFAULT_SYSTEM_PROMPT,
)

DOC = "Owls hunt at night using silent flight feathers."


def test_defaults_follow_the_reference():
    recipe = dataset_instruction_response()
    first, *_, generate, _, _ = recipe.steps
    assert first.model == Model(DEFAULT_MODEL) and first.attributes == {"num_instructions": 2}
    assert recipe.required_columns == {"input": "self_instruct"}
    token = dataset_instruction_response(hf_token="hf_secret").steps[0].model
    assert token.api_key == "hf_secret" and "hf_secret" not in repr(token)


def test_response_prompt_carries_the_document():
    recipe = dataset_instruction_response(model=None)
    generate = recipe.steps[3]
    (system, user) = generate.technique.render(
        "Why are owls quiet?", DEFAULT_SYSTEM_PROMPT, **generate.attributes, input=DOC
    )
    assert DOC in user["content"] and "Why are owls quiet?" in user["content"]


def test_outputs_list_of_dicts_and_named_system_prompts():
    prompts = {"writer": "You write.", "teacher": "You teach."}
    recipe = dataset_instruction_response(model=None, system_prompt=prompts, num_instructions=2)
    rows = [{"input": f"{DOC} ({i})"} for i in range(12)]
    out = recipe.run(rows, model="mock")
    assert {"instruction", "response", "conversation", "system_prompt_key", "model_name"} <= set(
        out.columns
    )
    assert set(out["system_prompt_key"]) == set(prompts)
    first = out.row(0, named=True)
    assert [t["role"] for t in first["conversation"]] == ["system", "user", "assistant"]
    assert first["conversation"][0]["content"] == prompts[first["system_prompt_key"]]
    again = recipe.run(rows, model="mock")
    assert again["system_prompt_key"].to_list() == out["system_prompt_key"].to_list()
    assert out.schema["conversation"] == pl.List(
        pl.Struct({"role": pl.String, "content": pl.String})
    )


def test_single_system_prompt_has_no_key_column():
    out = dataset_instruction_response(model=None, num_instructions=1).run(
        [{"input": DOC}], model="mock"
    )
    assert "system_prompt_key" not in out.columns
    assert set(out["system_prompt"]) == {DEFAULT_SYSTEM_PROMPT}


def test_accepts_a_hugging_face_dataset():
    datasets = __import__("pytest").importorskip("datasets")
    dataset = datasets.Dataset.from_list([{"input": DOC}, {"input": DOC + " Again."}])
    out = dataset_instruction_response(model=None, num_instructions=1).run(dataset, model="mock")
    assert set(out["input"]) == {DOC, DOC + " Again."}
