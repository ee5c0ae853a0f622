"""The reply cache under stress: damaged files, read-only folders, a full disk.

Runs go through ``recipe.run`` and ``promptflow run`` against the loopback server; the
cache is whatever the damage left behind. A run never ends in a traceback.
"""

from __future__ import annotations

import polars as pl

from promptflow_dsl import Model, ReplyCache, text_generation
from promptflow_dsl.testing import LoopbackServer

ROWS = 40
QUESTIONS = pl.DataFrame({"instruction": [f"Question number {i}?" for i in range(ROWS)]})


def model_at(server: LoopbackServer) -> Model:
    return Model("openai/loopback", api_base=server.api_base, api_key="sk-test")


def assert_complete(frame: pl.DataFrame) -> None:
    assert frame.height == ROWS
    assert frame["error"].is_null().all(), frame["error"].drop_nulls().to_list()[:1]
    assert frame["generation"].is_not_null().all()


def test_a_fresh_cache_object_caches(tmp_path):
    with LoopbackServer() as server:
        recipe = text_generation.step()
        assert_complete(
            recipe.run(QUESTIONS, model=model_at(server), cache=ReplyCache(tmp_path / "c.sqlite"))
        )
        before = server.stats.requests
        assert before == ROWS
        again = recipe.run(
            QUESTIONS, model=model_at(server), cache=ReplyCache(tmp_path / "c.sqlite")
        )
        assert_complete(again)
        assert server.stats.requests == before  # every reply came from the cache
