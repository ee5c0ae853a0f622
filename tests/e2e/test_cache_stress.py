"""The reply cache under stress: damaged files, read-only folders, a full disk.

Runs go through ``recipe.run`` and ``promptflow run`` against the loopback server; the
cache is whatever the damage left behind. A run never ends in a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from promptflow_dsl import Model, ReplyCache, text_generation
from promptflow_dsl.testing import LoopbackServer

RECIPE = "from promptflow_dsl import text_generation\nrecipe = text_generation.step()\n"
ROWS = 40
QUESTIONS = pl.DataFrame({"instruction": [f"Question number {i}?" for i in range(ROWS)]})


# -- damage ----------------------------------------------------------------------------


def truncate(path: Path) -> None:
    """Keep the first half of the file, as a copy cut short would."""
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def scribble(path: Path) -> None:
    """Replace the whole file with bytes that are not a database."""
    path.write_bytes(random.Random(1).randbytes(path.stat().st_size))


def overwrite_middle(path: Path) -> None:
    """Overwrite the middle half of the file, as a bad copy or a stray write would."""
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(size // 4)
        handle.write(random.Random(2).randbytes(size // 2))


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make *folder* and its files read-only: by mode bits as a user, by a read-only bind
    mount as root (whom mode bits do not stop). Skips where neither is possible."""
    if not hasattr(os, "geteuid"):
        pytest.skip("needs POSIX permissions")
    if os.geteuid() != 0:
        files = [p for p in folder.iterdir() if p.is_file()]
        for p in files:
            p.chmod(0o444)
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
            for p in files:
                p.chmod(0o644)
        return
    mounted = subprocess.run(["mount", "--bind", folder, folder], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount as root here: {mounted.stderr.decode().strip()}")
    try:
        remount = ["mount", "-o", "remount,bind,ro", folder]
        if subprocess.run(remount, capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield
    finally:
        unmount(folder)


def unmount(folder: Path) -> None:
    """Unmount *folder*, lazily if a file in it is still open."""
    if subprocess.run(["umount", folder], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", folder], check=True)


def limit_file_size(size: int) -> None:
    """In the child: files may not grow past *size* bytes; writes past it fail with EFBIG."""
    import resource  # POSIX only

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def aside(folder: Path) -> list[Path]:
    """The damaged files moved aside in *folder*."""
    return sorted(p for p in folder.iterdir() if ".corrupt-" in p.name)


# -- the library -----------------------------------------------------------------------


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


@pytest.mark.parametrize("damage", [truncate, scribble, overwrite_middle])
def test_a_damaged_cache_is_moved_aside_and_the_run_refetches(tmp_path, damage, caplog):
    path = tmp_path / "cache" / "c.sqlite"
    with LoopbackServer() as server:
        recipe = text_generation.step()
        cache = ReplyCache(path)
        assert_complete(recipe.run(QUESTIONS, model=model_at(server), cache=cache))
        cache.close()
        damage(path)
        again = recipe.run(QUESTIONS, model=model_at(server), cache=ReplyCache(path))
    assert_complete(again)
    (moved, *_) = aside(path.parent)
    assert moved.name.startswith("c.sqlite.corrupt-")
    notes = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert len(notes) == 1 and str(moved) in notes[0] and "\n" not in notes[0]


NEW = pl.DataFrame({"instruction": [f"New question {i}?" for i in range(5)]})


def run_damaged_midway(path: Path, damage: Callable[[], None]) -> tuple[pl.DataFrame, int]:
    """Cache every question, then run the new questions and those again, with *damage*
    done as the last new question is answered. Returns the output and the questions
    asked again."""

    def answer(request):
        if server.stats.requests == ROWS + NEW.height:
            damage()
        return "A long answer, longer than the pages SQLite keeps in memory. " * 1000

    with LoopbackServer(responder=answer) as server:
        recipe = text_generation.step()
        with contextlib.closing(ReplyCache(path)) as cache:
            assert_complete(recipe.run(QUESTIONS, model=model_at(server), cache=cache))
        # The new questions first, then the cached ones: those are read after the damage.
        with contextlib.closing(ReplyCache(path)) as cache:
            out = recipe.run(
                pl.concat([NEW, QUESTIONS]), model=model_at(server), cache=cache, max_concurrency=1
            )
        return out, server.stats.requests - ROWS - NEW.height


def test_a_cache_damaged_during_a_run_is_replaced_and_the_run_goes_on(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    out, refetched = run_damaged_midway(path, lambda: overwrite_middle(path))
    assert out["error"].is_null().all() and out["generation"].is_not_null().all()
    assert aside(tmp_path), "the damage was not noticed during the run"
    assert 0 < refetched < ROWS  # the replies read before the damage came from the cache
    assert any("corrupt" in r.getMessage() for r in caplog.records)


def test_a_cache_damaged_during_a_run_where_it_cannot_move_goes_on_uncached(tmp_path, caplog):
    path = tmp_path / "cache" / "c.sqlite"
    with contextlib.ExitStack() as later:

        def damage_and_lock() -> None:
            overwrite_middle(path)
            later.enter_context(read_only(path.parent))

        out, refetched = run_damaged_midway(path, damage_and_lock)
    assert out["error"].is_null().all() and out["generation"].is_not_null().all()
    assert not aside(path.parent) and 0 < refetched < ROWS
    assert any("cannot be moved aside" in r.getMessage() for r in caplog.records)


def test_a_read_only_cache_serves_every_reply(tmp_path, caplog):
    folder = tmp_path / "cache"
    with LoopbackServer() as server:
        recipe = text_generation.step()
        cache = ReplyCache(folder / "c.sqlite")
        assert_complete(recipe.run(QUESTIONS, model=model_at(server), cache=cache))
        cache.close()
        before = server.stats.requests
        more = pl.DataFrame({"instruction": ["A new question?"]})
        with read_only(folder), contextlib.closing(ReplyCache(folder / "c.sqlite")) as cache:
            again = recipe.run(QUESTIONS, model=model_at(server), cache=cache)
            new = recipe.run(more, model=model_at(server), cache=cache)
        assert_complete(again)
        assert server.stats.requests == before + 1  # only the new question was asked
    assert new["error"].is_null().all()
    notes = [r.getMessage() for r in caplog.records if "read-only" in r.getMessage()]
    assert len(notes) == 1 and "new ones are not stored" in notes[0]


def test_a_damaged_cache_in_a_read_only_folder_is_left_alone(tmp_path, caplog):
    folder = tmp_path / "cache"
    with LoopbackServer() as server:
        recipe = text_generation.step()
        with contextlib.closing(ReplyCache(folder / "c.sqlite")) as cache:
            assert_complete(recipe.run(QUESTIONS, model=model_at(server), cache=cache))
        scribble(folder / "c.sqlite")
        with read_only(folder), contextlib.closing(ReplyCache(folder / "c.sqlite")) as cache:
            out = recipe.run(QUESTIONS, model=model_at(server), cache=cache)
    assert_complete(out)
    assert not aside(folder)
    assert any("cannot be moved aside" in r.getMessage() for r in caplog.records)


def test_a_read_only_folder_without_a_cache_runs_uncached(tmp_path, caplog):
    folder = tmp_path / "cache"
    folder.mkdir()
    with LoopbackServer() as server:
        recipe = text_generation.step()
        with read_only(folder), contextlib.closing(ReplyCache(folder / "c.sqlite")) as cache:
            recipe.run(QUESTIONS, model=model_at(server), cache=cache)
            out = recipe.run(QUESTIONS, model=model_at(server), cache=cache)
        assert server.stats.requests == 2 * ROWS  # nothing could be stored
    assert_complete(out)
    assert any("cannot be created" in r.getMessage() for r in caplog.records)


# -- the command -----------------------------------------------------------------------


def command(tmp_path: Path, server: LoopbackServer, output: str, *extra: str) -> list[str]:
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    source = tmp_path / "questions.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in QUESTIONS.iter_rows(named=True)))
    return [
        sys.executable, "-m", "promptflow_dsl", "run", str(recipe),
        "-i", str(source), "-o", str(tmp_path / output),
        "--model", "openai/loopback", "--api-base", server.api_base,
        "--max-concurrency", "4", "--no-progress", *extra,
    ]  # fmt: skip


def run_command(args: list[str], cache: Path, **options) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROMPTFLOW_CACHE_DIR": str(cache), "OPENAI_API_KEY": "sk-test"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, **options)


def assert_clean(run: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in run.stderr, run.stderr


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    """One server for the module: cached replies are keyed by its address."""
    with LoopbackServer() as running:
        yield running


@pytest.fixture(scope="module")
def sound_cache(tmp_path_factory, server) -> Path:
    """A cache folder holding every reply the command needs (each test copies it)."""
    folder = tmp_path_factory.mktemp("sound")
    first = run_command(command(folder, server, "out.parquet"), folder / "cache")
    assert first.returncode == 0, first.stderr
    return folder / "cache"


@pytest.mark.parametrize("damage", [truncate, scribble, overwrite_middle])
def test_the_command_moves_a_damaged_cache_aside(tmp_path, server, sound_cache, damage):
    cache = shutil.copytree(sound_cache, tmp_path / "cache")
    damage(cache / "cache.sqlite")
    second = run_command(command(tmp_path, server, "out.parquet"), cache)
    assert_clean(second)
    assert second.returncode == 0, second.stderr
    assert_complete(pl.read_parquet(tmp_path / "out.parquet"))
    (moved, *_) = aside(cache)
    notes = [line for line in second.stderr.splitlines() if "corrupt" in line]
    assert len(notes) == 1 and str(moved) in notes[0]


def test_the_command_reads_a_read_only_cache_without_a_call(tmp_path, server, sound_cache):
    cache = shutil.copytree(sound_cache, tmp_path / "cache")
    before = server.stats.requests
    with read_only(cache):
        second = run_command(command(tmp_path, server, "out.parquet"), cache)
    assert server.stats.requests == before  # the second run made no request
    assert_clean(second)
    assert second.returncode == 0, second.stderr
    assert_complete(pl.read_parquet(tmp_path / "out.parquet"))
    notes = [line for line in second.stderr.splitlines() if "read-only" in line]
    assert len(notes) == 1, second.stderr


def test_cache_clear_on_a_read_only_cache_says_so(tmp_path, sound_cache):
    cache = shutil.copytree(sound_cache, tmp_path / "cache")
    with read_only(cache):
        cleared = run_command([sys.executable, "-m", "promptflow_dsl", "cache", "clear"], cache)
    assert_clean(cleared)
    assert cleared.returncode == 1 and "read-only" in cleared.stderr, cleared.stderr


POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="file size limits are POSIX")
FILE_LIMIT = 64 * 1024  # the cache's write-ahead log reaches it after some 15 replies


@POSIX_ONLY
def test_the_command_on_a_full_disk_says_so_in_one_line(tmp_path):
    cache = tmp_path / "cache"
    with LoopbackServer() as server:
        args = command(tmp_path, server, "out.parquet", "--chunk-size", "10")
        full = run_command(args, cache, preexec_fn=lambda: limit_file_size(FILE_LIMIT))
    assert_clean(full)
    notes = [line for line in full.stderr.splitlines() if "file size limit" in line]
    assert len(notes) == 1 and str(cache / "cache.sqlite") in notes[0], full.stderr


@POSIX_ONLY
def test_the_command_stops_on_a_full_disk_and_resumes_later(tmp_path):
    cache = tmp_path / "cache"
    rows = 400
    with LoopbackServer() as server:
        args = command(tmp_path, server, "out.parquet", "--chunk-size", "10")
        source = Path(args[args.index("-i") + 1])
        source.write_text(
            "".join(json.dumps({"instruction": f"Q{i}?"}) + "\n" for i in range(rows))
        )
        full = run_command(args, cache, preexec_fn=lambda: limit_file_size(FILE_LIMIT))
        assert_clean(full)
        assert full.returncode == 1
        (line,) = [x for x in full.stderr.splitlines() if x.startswith("error:")]
        assert "file size limit" in line and str(cache / "cache.sqlite") in line
        assert server.stats.requests < rows // 2  # it stopped, not spent its way through
        resumed = run_command(args, cache)
        assert resumed.returncode == 0, resumed.stderr
    assert pl.read_parquet(tmp_path / "out.parquet")["error"].is_null().all()


@contextlib.contextmanager
def small_filesystem(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of *size* mounted on *folder*; skips where mounting is not allowed."""
    folder.mkdir()
    if not shutil.which("mount") or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        unmount(folder)


def test_the_command_on_a_small_filesystem_says_no_space_left(tmp_path):
    with small_filesystem(tmp_path / "cache", "96k") as cache, LoopbackServer() as server:
        full = run_command(command(tmp_path, server, "out.parquet", "--chunk-size", "10"), cache)
    assert_clean(full)
    notes = [line for line in full.stderr.splitlines() if "no space left on device" in line]
    assert len(notes) == 1 and "free space and run again to resume" in notes[0], full.stderr
