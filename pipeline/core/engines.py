"""Where per-item work runs: in this process, in joblib's process workers on this machine,
or on an existing Dask cluster (``--scheduler ADDRESS``). ``extract`` (one task per
shard) and ``predict`` (one task per file) hand their work here and get the results back
as they are done; nothing else in them depends on the engine, so the outputs are the same.

On Dask the tasks go out with ``Client.map`` and come back through ``as_completed`` (or
in input order). Chosen over joblib's Dask backend because the futures are ours: the
tasks are coarse (seconds each), results are wanted as each finishes (progress, one
writer for the manifest), a lost worker surfaces as ``KilledWorker`` we can name, and the
scheduler's task stream shows which worker ran what.

What a cluster needs: every worker sees the corpus, the inputs and the artifacts folder
at the same paths as this machine (a shared filesystem; audio is not shipped), and has
this package installed at the same version. Each ``extract`` task writes its own shard
file (one writer per HDF5 file); the manifest is written here, after every shard. Run
workers with one thread each (``dask worker ADDRESS --nthreads 1``): each task already
uses its core fully.

Stopping: inside ``raise_on_sigterm`` (the CLI wraps every stage in it), SIGTERM raises
``Interrupted`` in the main thread as Ctrl-C raises ``KeyboardInterrupt``, so that
``finally`` blocks and context managers run (an output file is closed where it stands);
``stop_workers`` then kills the joblib workers of any run left open. The exception may
surface in the caller while a run's generator waits, suspended, for its next ``next()``:
joblib only stops its workers when the exception passes through it or the generator is
closed, which ``stop_workers`` does at once rather than at garbage collection (until
then the workers, and loky's resource tracker they keep alive, would run on as orphans
once this process exits).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import weakref
from pathlib import Path
from typing import Callable, Iterator

from pipeline.core import faults
from pipeline.core.errors import PipelineError

SCHEDULER_ENV = "SER_DASK_SCHEDULER"

# joblib output generators of the runs not yet finished (``stop_workers`` closes them)
_OPEN_RUNS: "weakref.WeakSet" = weakref.WeakSet()


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) arrived (``raise_on_sigterm``). ``signum``: the signal;
    ``exit_status``: 128 + signum, as a shell reports a process that signal ended."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def raise_on_sigterm() -> Iterator[None]:
    """For the block, SIGTERM raises ``Interrupted`` in the main thread (SIGINT already
    raises ``KeyboardInterrupt``); a second SIGTERM acts as before the block (by default
    it kills at once). Does nothing outside the main thread, or when SIGTERM is ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN:
        yield
        return
    restore = signal.SIG_DFL if previous is None else previous

    def interrupt(signum, _frame):
        signal.signal(signal.SIGTERM, restore)
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, restore)


def stop_workers() -> None:
    """Kill the worker processes of every joblib run of this process still open, and
    wait for them to end: call it after an interruption (see module docstring). joblib's
    "tasks cancelled" warning is left out: the caller says what was interrupted."""
    import warnings

    for outputs in list(_OPEN_RUNS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                outputs.close()  # joblib aborts: its loky workers are killed
            except ValueError:  # "generator already executing": it is unwinding itself
                pass


class WorkerKilled(PipelineError):
    """A worker process died mid-task (most often killed for memory); ``done`` results
    had been returned before it."""

    def __init__(self, message: str, done: int):
        super().__init__(message)
        self.done = done


def run(function: Callable, items: list, *, jobs: int = 1, scheduler: str | None = None,
        ordered: bool = True, batch_size: int = 1, shared_path: Path | None = None) -> Iterator:
    """Yield ``function(item)`` for every item: in input order (``ordered``) or as each
    finishes. On the Dask cluster at ``scheduler`` when given (``shared_path``: a folder
    every worker must see, checked first), else in ``jobs`` joblib process workers (one
    BLAS thread each; ``batch_size`` items per dispatch), else here (``jobs`` = 1).

    Raises ``WorkerKilled`` when a worker dies, ``PipelineError`` naming the fix when
    Dask is missing, the scheduler cannot be reached or a worker cannot see
    ``shared_path``; a task's own exception propagates."""
    if jobs == 1 and not scheduler:
        yield from map(function, items)
        return
    function = faults.carrying(function, faults.installed())  # workers have no entry point
    if scheduler:
        yield from _on_dask(function, items, scheduler, ordered=ordered, shared_path=shared_path)
    else:
        yield from _on_joblib(function, items, jobs, ordered=ordered, batch_size=batch_size)


def _on_joblib(function: Callable, items: list, jobs: int, *, ordered: bool,
               batch_size: int) -> Iterator:
    from joblib import Parallel, delayed, parallel_config
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    done = 0
    try:
        with parallel_config(backend="loky", inner_max_num_threads=1):
            runner = Parallel(n_jobs=jobs, batch_size=batch_size,
                              return_as="generator" if ordered else "generator_unordered")
            outputs = runner(delayed(function)(item) for item in items)
            _OPEN_RUNS.add(outputs)
            for result in outputs:
                done += 1
                yield result
    except TerminatedWorkerError:
        raise WorkerKilled("a worker process was killed (out of memory?)", done) from None


@contextlib.contextmanager
def dask_client(address: str):
    """A ``distributed.Client`` connected to the scheduler at ``address``, closed on exit
    (the cluster itself is left running). Raises ``PipelineError`` with the fix when
    Dask is not installed or the scheduler cannot be reached."""
    try:
        from distributed import Client
    except ImportError:
        raise PipelineError("--scheduler needs Dask: pip install 'ser-pipeline[dask]'") from None
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise PipelineError(f"cannot reach the Dask scheduler at {address} ({exc}): start one "
                            "('dask scheduler', then 'dask worker ADDRESS --nthreads 1' on each "
                            f"machine) or fix --scheduler / {SCHEDULER_ENV}") from None
    try:
        yield client
    finally:
        client.close()


def _on_dask(function: Callable, items: list, address: str, *, ordered: bool,
             shared_path: Path | None) -> Iterator:
    with dask_client(address) as client:  # first: it says how to install Dask if missing
        from distributed import as_completed
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        if shared_path is not None:
            _check_shared(client, Path(shared_path))
        futures = client.map(function, items, pure=False)
        done = 0
        try:
            stream = futures if ordered else as_completed(futures, loop=client.loop)
            for future in stream:
                result = future.result()
                done += 1
                yield result
        except (KilledWorker, FutureCancelledError) as exc:
            raise WorkerKilled(f"a Dask worker died running a task ({type(exc).__name__})",
                               done) from None
        finally:
            client.cancel(futures)


def _check_shared(client, folder: Path) -> None:
    """Refuse, naming the worker and the fix, when a worker cannot see ``folder``."""
    seen = client.run(os.path.isdir, str(folder.resolve()))
    blind = sorted(worker for worker, visible in seen.items() if not visible)
    if not seen:
        raise PipelineError(f"the Dask cluster has no workers: start some with 'dask worker "
                            f"{client.scheduler.address} --nthreads 1'")
    if blind:
        raise PipelineError(f"Dask worker(s) {', '.join(blind)} cannot see {folder.resolve()}: "
                            "workers need the corpus and artifacts on a filesystem shared with "
                            "this machine, at the same paths")


def bind(function: Callable, **kwargs) -> Callable:
    """``function`` with keyword arguments fixed: a picklable one-argument task."""
    return functools.partial(function, **kwargs)
