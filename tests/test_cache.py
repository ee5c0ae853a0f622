import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from pydantic import BaseModel

from promptflow_dsl import Model, ReplyCache, genstruct, self_instruct, text_generation
from promptflow_dsl._engine._cache import CachedReply, cache_key, open_cache

PROGRAM = self_instruct.program("Tides follow the moon.", num_instructions=3)
MODEL = Model("openai/gpt-4o-mini", temperature=0.2, api_base="http://127.0.0.1:1/v1")
KEY = cache_key(PROGRAM, MODEL)


class Other(BaseModel):
    instructions: list[int]


@pytest.mark.parametrize(
    ("program", "model", "sample"),
    [
        (PROGRAM, Model("openai/gpt-4o", temperature=0.2, api_base=MODEL.api_base), 0),
        (PROGRAM, MODEL.replace(api_base="http://127.0.0.1:2/v1"), 0),
        (PROGRAM, MODEL.replace(temperature=0.3), 0),
        (PROGRAM, MODEL.replace(params={"top_p": 0.5}), 0),
        (PROGRAM, MODEL.replace(mode="json"), 0),
        (PROGRAM, MODEL, 1),
        (self_instruct.program("Tides follow the moon!", num_instructions=3), MODEL, 0),
        (self_instruct.program("Tides follow the moon.", num_instructions=4), MODEL, 0),
        (text_generation.program("Tides follow the moon."), MODEL, 0),
        (PROGRAM.__class__(Other, messages=PROGRAM.messages), MODEL, 0),
    ],
)
def test_a_change_in_any_key_part_misses(program, model, sample):
    assert cache_key(program, model, sample) != KEY


def test_unrelated_changes_hit():
    assert cache_key(PROGRAM, MODEL.replace(api_key="sk-other", timeout=5, rpm=10)) == KEY
    assert (
        cache_key(self_instruct.program("Tides follow the moon.", num_instructions=3), MODEL) == KEY
    )


def test_keys_are_stable_across_processes_and_hash_seeds():
    code = textwrap.dedent(
        """
        from promptflow_dsl import Model, self_instruct
        from promptflow_dsl._engine._cache import cache_key
        program = self_instruct.program("Tides follow the moon.", num_instructions=3)
        print(cache_key(program, Model("openai/gpt-4o-mini", temperature=0.2, api_base="http://127.0.0.1:1/v1")))
        """
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2", "random")
    }
    assert keys == {KEY}


def test_keys_of_existing_caches_never_change():
    # Pinned: a change here orphans every reply already stored in users' caches.
    assert KEY == "dd49c30ca9f6a88a0c840610cbd1f79e742349e2a8373292d088789d81b6d89b"
    chat = text_generation.program("Tides follow the moon.")
    model = MODEL.replace(mode="json", params={"top_p": 0.5})
    assert cache_key(chat, model, 7) == (
        "d0ca95b3a33c5dae414218ea4a5de76b77279abfd107b06b31ec2dc9b3092b4b"
    )
    raw = genstruct.program("Owls", "Owls hunt at night.")
    assert cache_key(raw, MODEL, 2) == (
        "5c91718b5832708e85636767841f1d866c617018f8c6d1d9f453a7c2903917fc"
    )


def test_api_key_never_reaches_the_cache_file(tmp_path):
    cache = ReplyCache(tmp_path / "c.sqlite")
    cache.put(
        cache_key(PROGRAM, MODEL.replace(api_key="sk-live-secret")),
        CachedReply("raw", "{}", "m", 1, 1, 0.0),
    )
    cache.close()
    assert b"sk-live-secret" not in (tmp_path / "c.sqlite").read_bytes()


def test_a_changed_parser_rereads_the_stored_text(tmp_path, monkeypatch):
    from promptflow_dsl._engine import _interpreter
    from promptflow_dsl._engine._cache import ReplyCache as Cache

    cache = Cache(tmp_path / "c.sqlite")
    program = text_generation.program("Q?")
    model = Model("openai/x", api_base="http://127.0.0.1:9/v1")
    cache.put(
        cache_key(program, model),
        CachedReply(
            "  stored text  ", '{"generation": "old"}', "openai/x", 3, 4, 0.1, via_text=True
        ),
    )
    import asyncio

    completion = asyncio.run(_interpreter.interpret(program, model, cache=cache))
    assert completion.result.generation == "stored text"  # parsed now, from the raw reply
    assert completion.usage.cache_hit and completion.usage.attempts == 0


WRITER = textwrap.dedent(
    """
    import sys
    from promptflow_dsl import ReplyCache
    from promptflow_dsl._engine._cache import CachedReply
    cache = ReplyCache(sys.argv[1])
    for i in range(400):
        cache.put(f"{sys.argv[2]}-{i}", CachedReply("raw" * 50, '{"a": 1}', "m", i, i, 0.0))
    """
)


def test_two_processes_writing_one_cache_do_not_corrupt_it(tmp_path):
    path = tmp_path / "shared.sqlite"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name]) for name in ("a", "b")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert len(ReplyCache(path)) == 800
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_an_empty_cache_is_still_the_cache_a_run_uses(tmp_path):
    cache = ReplyCache(tmp_path / "c.sqlite")
    assert len(cache) == 0 and bool(cache)
    assert open_cache(cache) is cache


FILLER = textwrap.dedent(
    """
    import resource, signal, sys
    from promptflow_dsl import ReplyCache, StorageFullError
    from promptflow_dsl._engine._cache import CachedReply
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
    cache = ReplyCache(sys.argv[1])
    for i in range(1000):
        try:
            cache.put(f"k{i}", CachedReply("raw" * 50, '{"a": 1}', "m", i, i, 0.0))
        except StorageFullError as exc:
            print(i, exc, sep="\\n")
            break
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="file size limits are POSIX")
def test_a_put_past_the_file_size_limit_raises_storage_full_and_keeps_what_was_stored(tmp_path):
    path = tmp_path / "c.sqlite"
    run = subprocess.run(
        [sys.executable, "-c", FILLER, str(path)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    stored, message = run.stdout.splitlines()
    assert message == (
        f"the cache at {path} reached the file size limit (ulimit -f); "
        "raise the limit and run again to resume"
    )
    assert 0 < int(stored) == len(ReplyCache(path))  # the next run resumes from these
