import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from promptflow_dsl import ParseError, UserAssistantPair, genstruct
from promptflow_dsl.techniques.genstruct import format_user_assistant, parse_user_assistant

turn = st.text(min_size=1, max_size=120).map(str.strip).filter(bool)


def test_prompt_is_exactly_the_trained_format():
    assert genstruct.render("  Tides \n", "\n The moon pulls the sea.  ") == (
        "[[[Title]]] Tides\n[[[Content]]] The moon pulls the sea.\n\nThe following is an interaction "
        "between a user and an AI assistant that is related to the above text.\n\n[[[User]]] "
    )
    assert genstruct.program("t", "c").is_raw


@given(turn, turn)
def test_round_trip(user, assistant):
    assume("[[[" not in user + assistant)
    pair = UserAssistantPair(user=user, assistant=assistant)
    assert parse_user_assistant(format_user_assistant(pair)) == pair


@given(
    turn, turn, st.sampled_from(["[[[User]]] ", "[[[Title]]] x\n[[[Content]]] y\n\n[[[User]]] "])
)
def test_echoed_prefix_and_following_turns_are_cut(user, assistant, echo):
    assume("[[[" not in user + assistant)
    text = f"{echo}{user}\n[[[Assistant]]] {assistant}\n\n[[[User]]] another question"
    assert parse_user_assistant(text) == UserAssistantPair(user=user, assistant=assistant)


@given(st.text())
def test_no_silent_nulls(text):
    try:
        pair = parse_user_assistant(text)
    except ParseError as exc:
        assert exc.raw_text == text
    else:
        assert pair.user and pair.assistant


@pytest.mark.parametrize(
    "text", ["What is it?", "Q?\n[[[Assistant]]]   ", "[[[User]]]\n[[[Assistant]]] A."]
)
def test_missing_marker_or_empty_side_raises(text):
    with pytest.raises(ParseError):
        genstruct.parse(text)
