"""The sync API in a real Jupyter kernel: the interrupt button stops a run, and progress is
one updating line (issue 11, "Ctrl-C" and "Progress everywhere").

A kernel is started with jupyter_client from this interpreter (``python -m
ipykernel_launcher``), as a notebook server starts one, and cells are sent to it. The model
is a loopback server in this process, which notes when each request arrives, so the tests
count calls rather than time them. Every wait is bounded, so a hung kernel fails a test
instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from promptflow_dsl.testing import LoopbackServer

CONCURRENCY = 4
START_S = 60.0  # a cold kernel imports IPython, Polars and LiteLLM
CELL_S = 60.0  # the longest any cell may take before the test gives up on it
# What LiteLLM's logging worker printed when its loop was torn down under it, and what a
# run that leaked a task would leave behind.
LOOP_ERRORS = (
    "Traceback",
    "cannot reuse already awaited coroutine",
    "task_done() called too many times",
    "Task was destroyed but it is pending",
    "Exception in thread",
)


@dataclass
class Cell:
    """What one executed cell sent back: its reply and its iopub messages."""

    msg_id: str
    reply: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in types]

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream") if _out(m))

    @property
    def stderr(self) -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream") if not _out(m))

    def everything(self) -> str:
        return json.dumps([m["content"] for m in self.messages])


def _out(message: dict[str, Any]) -> bool:
    return message["content"]["name"] == "stdout"


class Kernel:
    """A running IPython kernel and a blocking client to it."""

    def __init__(self, manager: KernelManager) -> None:
        self.manager = manager
        self.client = manager.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=START_S)

    def send(self, code: str) -> str:
        """Start executing *code*; returns the request's id."""
        return self.client.execute(code, store_history=False)

    def collect(self, msg_id: str, timeout: float = CELL_S) -> Cell:
        """Wait (at most *timeout* seconds) until the cell *msg_id* is done; its messages.

        Messages of other requests are kept too: output sent to the wrong cell is a bug
        the tests look for.
        """
        cell = Cell(msg_id)
        deadline = time.monotonic() + timeout
        while True:
            message = _next(self.client.get_iopub_msg, deadline)
            cell.messages.append(message)
            ours = message["parent_header"].get("msg_id") == msg_id
            if ours and message["msg_type"] == "status":
                if message["content"]["execution_state"] == "idle":
                    break
        while not cell.reply:
            reply = _next(self.client.get_shell_msg, deadline)
            if reply["parent_header"].get("msg_id") == msg_id:
                cell.reply = reply["content"]
        return cell

    def run(self, code: str, timeout: float = CELL_S) -> Cell:
        """Execute *code* and return its cell; fail the test if it raised."""
        cell = self.collect(self.send(code), timeout)
        assert cell.reply["status"] == "ok", cell.reply.get("traceback") or cell.reply
        return cell

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        pytest.fail("gave up waiting: the kernel (or the server) did not get there in time")
    return left


def _next(get: Callable[..., dict[str, Any]], deadline: float) -> dict[str, Any]:
    try:
        return get(timeout=_left(deadline))
    except queue.Empty:
        pytest.fail("gave up waiting: the kernel sent nothing more")


class Arrivals:
    """A responder that notes when each request arrives (and lets the server answer)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, request: object) -> None:
        with self._lock:
            self.times.append(time.monotonic())

    def since(self, moment: float) -> int:
        with self._lock:
            return sum(t > moment for t in self.times)

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.times) < count:
            _left(deadline)
            time.sleep(0.01)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory):
    """A kernel of this interpreter, with its own cache folder; shut down after the module."""
    home = tmp_path_factory.mktemp("kernel")
    spec = home / "kernels" / "promptflow-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "promptflow test", "language": "python"})
    )
    manager = KernelManager(
        kernel_name="promptflow-test",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]),
    )
    env = {
        **os.environ,
        "PROMPTFLOW_CACHE_DIR": str(home / "cache"),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OPENAI_API_KEY": "sk-test",
    }
    manager.start_kernel(env=env, cwd=str(home))
    try:
        running = Kernel(manager)
        running.run(
            "import polars as pl\n"
            "from promptflow_dsl import Model, text_generation\n"
            "def questions(n):\n"
            "    return pl.DataFrame({'instruction': [f'Q {i}?' for i in range(n)]})\n"
            # The sync API's loop and its thread start here, in an earlier cell than the
            # runs below, as in a notebook that called something before.
            "text_generation('Warm up?', model='mock', cache=False)\n",
            timeout=START_S,
        )
    except BaseException:
        manager.shutdown_kernel(now=True)
        raise
    yield running
    running.stop()


def run_code(server: LoopbackServer, rows: int, *, cache: bool) -> str:
    """A cell that runs text_generation over *rows* questions against *server*."""
    return (
        f"model = Model('openai/x', api_base={server.api_base!r}, api_key='sk-test')\n"
        f"out = text_generation.step().run(questions({rows}), model=model, "
        f"max_concurrency={CONCURRENCY}, cache={cache})\n"
        "print('failed', out['error'].is_not_null().sum(), 'of', out.height)\n"
    )


def test_the_interrupt_button_stops_the_run_and_running_the_cell_again_resumes_it(kernel):
    rows = 80
    arrivals = Arrivals()
    # 1 s a call at 4 in flight: the run would take 20 s, and a call cut short is never
    # answered, so the server's counts tell a cancelled call from a finished one.
    with LoopbackServer(latency=1.0, responder=arrivals) as server:
        msg_id = kernel.send(run_code(server, rows, cache=True))
        arrivals.wait_for(3 * CONCURRENCY, timeout=CELL_S)  # well under way
        interrupted = time.monotonic()
        kernel.manager.interrupt_kernel()  # what the notebook's interrupt button does
        cell = kernel.collect(msg_id, timeout=15)
        ended = time.monotonic()
        time.sleep(1.5)  # anything still running on the loop would call again by now
        issued_after, issued_late = arrivals.since(interrupted), arrivals.since(ended)
        stats = server.stats
        # The same cell again, on the same loop and model: it takes the finished calls
        # from the cache and makes the rest (a leaked slot or a dead loop would hang it).
        server.latency = 0.05
        again = kernel.run(run_code(server, rows, cache=True), timeout=CELL_S)
        made_again = server.stats.requests - stats.requests

    assert cell.reply["status"] == "error"
    assert cell.reply["ename"] == "KeyboardInterrupt"
    assert issued_after <= CONCURRENCY  # at most what was in flight...
    assert issued_late == 0  # ...and none once the cell has ended
    finished = stats.by_status.get(200, 0)
    assert stats.in_flight == 0
    assert finished < stats.requests  # the calls in flight were cut, not waited for
    assert not any(error in cell.stderr for error in LOOP_ERRORS), cell.stderr
    assert f"failed 0 of {rows}" in again.stdout
    # Every call answered before the interrupt was kept (one whose reply was on the wire
    # when the run was cancelled may be made again).
    assert rows - finished <= made_again <= rows - finished + CONCURRENCY
    assert not any(error in again.stderr for error in LOOP_ERRORS), again.stderr


def test_progress_is_one_line_updated_in_place_with_no_install_hint(kernel):
    rows = 6 * CONCURRENCY
    # 0.5 s a call: about 3 s in all, long enough for the line to change while it runs.
    with LoopbackServer(latency=0.5) as server:
        cell = kernel.run(run_code(server, rows, cache=False), timeout=CELL_S)
    assert f"failed 0 of {rows}" in cell.stdout
    shown = cell.of_type("display_data")
    updates = cell.of_type("update_display_data")
    assert len(shown) == 1, cell.everything()  # one line...
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert updates, cell.everything()  # ...replaced in place
    assert {u["content"]["transient"]["display_id"] for u in updates} == {display_id}
    # The progress comes from the loop's thread, yet it belongs to the cell that ran.
    assert all(m["parent_header"]["msg_id"] == cell.msg_id for m in shown + updates)
    lines = [m["content"]["data"]["text/plain"] for m in shown + updates]
    assert lines[-1].startswith(f"progress: text_generation {rows}/{rows} rows, 0 failed")
    assert any(f"/{rows} rows" in line and f" {rows}/" not in line for line in lines), lines
    assert "ipywidgets" not in cell.everything()
    assert "pip install" not in cell.everything()
    assert not any(error in cell.stderr for error in LOOP_ERRORS), cell.stderr
