"""A process pool for recognition jobs: deadlines, crash recovery, clean shutdown.

Recognition is CPU-bound for seconds to minutes; running it in worker processes keeps the
consumer's event loop free to heartbeat (no rebalance storms during a long call). Workers are
started from a ``forkserver`` (a clean process, not a fork of one running an event loop and
threads) and load their model once, in the pool's initializer.

Timeouts are enforced twice:

1. **Cooperatively.** Each job receives an absolute ``deadline`` (``time.monotonic()``, which
   is system-wide on Linux) and checks it between chunks of audio, raising
   ``AsrError("asr_timeout")``. The worker is then free again at once and nothing else is
   disturbed. The budget starts when a worker takes the job: jobs beyond the number of workers
   wait their turn in the pool (not in the executor's queue), so a call queued behind others
   is not timed out for waiting.
2. **As a backstop.** If a job is still running ``grace_s`` after its deadline (stuck in native
   code), the pool is replaced and its processes are killed. Other calls running on the old
   pool at that moment fail with the retryable ``asr_failed``.

A worker that dies (segfault, OOM kill) breaks a ``ProcessPoolExecutor`` for good; the pool
is replaced and the call fails with ``asr_failed``, so the next call finds working processes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from .errors import AsrError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a job may overrun its deadline before its worker is killed.
DEFAULT_GRACE_S = 10.0


class WorkerPool:
    """``workers`` processes running ``initializer(*initargs)`` once, then jobs.

    ``run(fn, *args, timeout_s=...)`` calls ``fn(*args, deadline=...)`` in a worker; ``fn`` must
    be a module-level function (it is pickled by reference).
    """

    def __init__(
        self,
        *,
        workers: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        grace_s: float = DEFAULT_GRACE_S,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._workers = workers
        self._initializer = initializer
        self._initargs = initargs
        self._grace_s = grace_s
        self._context = multiprocessing.get_context("forkserver")
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._closed = False
        #: How many times the pool was replaced after a crash or a stuck job.
        self.restarts = 0
        # One job per worker at a time: a job's budget starts when it gets one.
        self._turns = asyncio.Semaphore(workers)

    def _current(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._closed:
            raise AsrError("asr_unavailable", "the transcriber is closed")
        if self._executor is None:
            # Created on first use, so constructing a transcriber costs nothing and its
            # processes start (and load the model) only when there is work.
            self._executor = concurrent.futures.ProcessPoolExecutor(
                self._workers,
                mp_context=self._context,
                initializer=self._initializer,
                initargs=self._initargs,
            )
        return self._executor

    def worker_pids(self) -> list[int]:
        """The process ids of the current workers (for benchmarks and diagnostics)."""
        executor = self._executor
        processes: dict[int, Any] = getattr(executor, "_processes", None) or {}
        return [p.pid for p in list(processes.values()) if p.pid is not None]

    async def run(self, fn: Callable[..., T], *args: Any, timeout_s: float) -> T:
        """``fn(*args, deadline=now + timeout_s)`` in a worker process.

        Raises ``AsrError``: whatever the job raised as one, ``asr_timeout`` when the backstop
        fired, ``asr_failed`` when the worker died or the job raised anything else.
        """
        async with self._turns:
            return await self._run(fn, *args, timeout_s=timeout_s)

    async def _run(self, fn: Callable[..., T], *args: Any, timeout_s: float) -> T:
        executor = self._current()
        deadline = time.monotonic() + timeout_s
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(executor, functools.partial(fn, *args, deadline=deadline))
        except BrokenProcessPool as exc:
            self._replace(executor, kill=False)
            raise AsrError("asr_failed", "the recognition pool was broken") from exc
        except RuntimeError as exc:  # submitting to a pool that is shutting down
            raise AsrError("asr_unavailable", "the transcriber is closed") from exc
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout_s + self._grace_s)
        except asyncio.CancelledError:
            future.cancel()  # a job still queued never starts; a running one stops at its deadline
            raise
        if not done:
            future.cancel()
            log.error("recognition job overran its deadline; killing the worker pool", extra={"timeout_s": timeout_s})
            self._replace(executor, kill=True)
            raise AsrError("asr_timeout", f"recognition did not finish within {timeout_s:.0f} s")
        try:
            return future.result()
        except AsrError:
            raise
        except BrokenProcessPool as exc:
            log.error("a recognition worker died; replacing the pool")
            self._replace(executor, kill=False)
            raise AsrError("asr_failed", "the recognition worker died") from exc
        except Exception as exc:
            raise AsrError("asr_failed", f"recognition failed: {type(exc).__name__}: {exc}") from exc

    def _replace(self, broken: concurrent.futures.ProcessPoolExecutor, *, kill: bool) -> None:
        # Concurrent calls on the same broken pool all land here; only the first replaces it.
        if self._executor is broken:
            self._executor = None
            self.restarts += 1
        _dispose(broken, kill=kill)

    async def close(self) -> None:
        """Stop every worker. Running jobs are abandoned (their calls will be redelivered)."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            _kill_workers(executor)
            # Joining the processes blocks: off the event loop.
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


def _kill_workers(executor: concurrent.futures.ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor has no public way to stop a running job (3.14 adds kill_workers());
    # its process table is the only handle on the workers.
    kill = getattr(executor, "kill_workers", None)
    if callable(kill):
        kill()
        return
    processes: dict[int, Any] = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        if process.is_alive():
            process.kill()


def _dispose(executor: concurrent.futures.ProcessPoolExecutor, *, kill: bool) -> None:
    if kill:
        _kill_workers(executor)
    # Non-blocking: the executor's management thread reaps the processes.
    executor.shutdown(wait=False, cancel_futures=True)
