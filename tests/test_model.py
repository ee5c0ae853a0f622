import pickle

import pytest

from promptflow_dsl import Model


def test_api_key_never_in_repr_or_str():
    model = Model("openai/gpt-4o-mini", api_key="sk-very-secret", temperature=0.3)
    assert "sk-very-secret" not in repr(model)
    assert "sk-very-secret" not in str(model)
    assert "temperature=0.3" in repr(model)


def test_coerce_accepts_strings_and_models():
    model = Model("ollama/llama3.1", temperature=0.7)
    assert Model.coerce(model) is model
    assert Model.coerce(" openai/gpt-4o ") == Model("openai/gpt-4o")
    with pytest.raises(TypeError, match="model string"):
        Model.coerce("")


def test_call_params_merge_explicit_fields_and_extra_params():
    model = Model("x/y", temperature=0.0, max_tokens=10, params={"top_p": 0.5})
    assert model.call_params() == {"temperature": 0.0, "max_tokens": 10, "top_p": 0.5}


def test_offline_model_is_recognised_and_pickles():
    assert Model("mock").is_offline
    assert not Model("openai/mock").is_offline
    assert pickle.loads(pickle.dumps(Model("mock"))) == Model("mock")


def test_an_unknown_mode_fails_when_the_model_is_made():
    from promptflow_dsl import Model, ModelSettingError

    with pytest.raises(ModelSettingError, match="mode 'strict_json' is not one of tools, json"):
        Model("openai/gpt-4o-mini", mode="strict_json")  # type: ignore[arg-type]
    assert Model("openai/gpt-4o-mini", mode="json_schema").mode == "json_schema"
