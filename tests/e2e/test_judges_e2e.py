"""The judges end to end: LiteLLM and Instructor over HTTP to the loopback server, in a
structured mode and in text, and the offline model."""

import polars as pl

from promptflow_dsl import (
    Model,
    Preference,
    Ratings,
    Scores,
    complexity_score,
    pairwise_preference,
    quality_score,
    rename,
    ultrafeedback,
)
from promptflow_dsl.testing import LoopbackServer

FRAME = pl.DataFrame(
    {
        "instruction": ["Explain tides.", "Name a prime number."],
        "generations": [
            ["The moon pulls the sea.", "Wind.", "Gravity of moon and sun."],
            ["2", "9"],
        ],
    }
)


def model_at(server: LoopbackServer, **options) -> Model:
    return Model("openai/loopback-model", api_base=server.api_base, api_key="sk-test", **options)


def test_ultrafeedback_structured_asks_for_one_rating_per_generation(loopback_server):
    out = ultrafeedback.step(aspect="helpfulness").run(
        FRAME, model=model_at(loopback_server), max_concurrency=1, cache=False
    )
    assert out["error"].is_null().all()
    assert [len(r) for r in out["ratings"]] == [3, 2]
    assert [len(r) for r in out["rationales"]] == [3, 2]
    assert all(1 <= r <= 5 for row in out["ratings"] for r in row)
    first = loopback_server.requests[0]
    tool = first.body["tools"][0]["function"]
    assert tool["name"] == "Ratings"
    assert tool["parameters"]["properties"]["ratings"]["minItems"] == 3
    assert "## Response 3\nGravity of moon and sun." in first.text
    assert "Helpfulness:" in first.text


def test_ultrafeedback_structured_reasks_a_reply_of_the_wrong_count(loopback_server):
    loopback_server.script(
        [
            {"ratings": [4], "rationales": ["only one"]},
            {"ratings": [4, 1], "rationales": ["right", "wrong"]},
        ]
    )
    result = ultrafeedback(
        "Name a prime number.", ["2", "9"], model=model_at(loopback_server), cache=False
    )
    assert result == Ratings(ratings=[4, 1], rationales=["right", "wrong"])
    assert len(loopback_server.requests) == 2  # the first reply was re-asked


def test_ultrafeedback_text_mode_reads_what_judges_write(loopback_server):
    loopback_server.script(
        [
            "Response 1\nRating: 5\nRationale: exact.\n\nResponse 2\nRating: 1\nRationale: "
            "wrong.\n\nResponse 3\nRating: 4/5\nRationale: right, but vague.",
            "1. 5 - correct\n2. 4 - correct, but 9 is not prime... wait, it is wrong\n3. 2",
        ]
    )
    out = ultrafeedback.step().run(
        FRAME, model=model_at(loopback_server, mode="text"), max_concurrency=1, cache=False
    )
    assert out["ratings"].to_list() == [[5, 1, 4], None]
    assert out["rationales"][0].to_list() == ["exact.", "wrong.", "right, but vague."]
    error = out["error"][1]  # three ratings for two generations: a row failure, not a cut
    assert error["type"] == "ParseError" and error["raw_reply"].startswith("1. 5 - correct")
    assert all("tools" not in r.body for r in loopback_server.requests)


def test_deita_scorers_structured_and_text(loopback_server):
    variants = pl.DataFrame(
        {"instructions": [["Sort a list.", "Sort a list stably, in place, in O(n log n)."]]}
    )
    structured = complexity_score.step().run(variants, model=model_at(loopback_server), cache=False)
    (scores,) = structured["scores"].to_list()
    assert len(scores) == 2 and all(1 <= s <= 6 for s in scores)
    assert loopback_server.requests[-1].body["tools"][0]["function"]["name"] == "Scores"

    loopback_server.script(["Instruction 1: 1\nInstruction 2: **5**"])
    text = complexity_score.step().run(
        variants, model=model_at(loopback_server, mode="text"), cache=False
    )
    assert text["scores"].to_list() == [[1, 5]]

    loopback_server.script(['{"scores": [6, 2.5, 1]}'])
    scored = quality_score(
        "Explain tides.",
        ["Moon and sun gravity, with diagrams.", "The moon.", "Wind."],
        model=model_at(loopback_server, mode="text"),
        cache=False,
    )
    assert scored == Scores(scores=[6, 2.5, 1])


def test_pairwise_preference_structured_and_text(loopback_server):
    loopback_server.script([{"preferred": "b", "reason": "B is right."}, "Winner: [[A]]"])
    structured = pairwise_preference(
        "Name a prime.", "9", "7", model=model_at(loopback_server), cache=False
    )
    assert structured == Preference(preferred="b", reason="B is right.")
    assert loopback_server.requests[0].body["tools"][0]["function"]["name"] == "Preference"
    text = pairwise_preference(
        "Name a prime.", "7", "9", model=model_at(loopback_server, mode="text"), cache=False
    )
    assert text.preferred == "a"


def test_both_orders_turns_a_disagreement_into_a_tie(loopback_server):
    pairs = pl.DataFrame(
        {
            "instruction": ["Name a prime.", "Name a colour."],
            "response_a": ["7", "Blue."],
            "response_b": ["9", "Loud."],
        }
    )
    loopback_server.script(
        [
            # Row 1: response A both times (B/A order shows "7" as B): the verdict stands.
            "Preferred: A\nReason: 7 is prime.",
            "Preferred: B\nReason: 7 is prime.",
            # Row 2: the first position both times: position bias, so a tie.
            "Preferred: A\nReason: the first is better.",
            "Preferred: A\nReason: the first is better.",
        ]
    )
    out = pairwise_preference.step(both_orders=True).run(
        pairs, model=model_at(loopback_server, mode="text"), max_concurrency=1, cache=False
    )
    assert out["preferred"].to_list() == ["a", "tie"]
    assert out["error"].is_null().all()
    assert "A shown first: preferred a" in out["reason"][1]
    assert "B shown first: preferred b" in out["reason"][1]
    texts = [r.text for r in loopback_server.requests]
    assert "# Response A\n7\n\n# Response B\n9" in texts[0]
    assert "# Response A\n9\n\n# Response B\n7" in texts[1]
    assert out["usage"][0]["attempts"] == 2


def test_the_offline_model_gives_schema_valid_judgements_of_the_right_count():
    frame = FRAME.with_columns(
        response_a=pl.col("generations").list.first(),
        response_b=pl.col("generations").list.last(),
    )
    recipe = (
        ultrafeedback.step()
        >> quality_score.step(inputs={"responses": "generations"})
        >> rename(scores="quality_scores")
        >> complexity_score.step(inputs={"instructions": "generations"})
        >> pairwise_preference.step(both_orders=True)
    )
    out = recipe.run(frame, model="mock")
    assert out["error"].is_null().all()
    for row in out.iter_rows(named=True):
        count = len(row["generations"])
        ratings = Ratings(ratings=row["ratings"], rationales=row["rationales"])
        assert len(ratings.ratings) == count
        assert len(Scores(scores=row["quality_scores"]).scores) == count
        assert len(Scores(scores=row["scores"]).scores) == count
        Preference(preferred=row["preferred"], reason=row["reason"])
        assert row["model_name"].startswith("mock")
