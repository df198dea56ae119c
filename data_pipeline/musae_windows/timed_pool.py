"""A process pool that gives every task a time limit, survives crashed workers and keeps order.

multiprocessing.Pool cannot do this: a task that hangs blocks `imap` forever, and a worker that
dies (a C extension crashing on a malformed file) silently loses its task. Here each worker has
its own pipe, so the parent always knows which task a worker is on and since when; a worker past
the limit is killed and replaced, its task is reported as a timeout, and the tasks queued behind
it are handed out again. Results come back in task order, so what is built from them does not
depend on scheduling (same data for any number of workers).
"""

import collections
import dataclasses
import multiprocessing
from multiprocessing import connection
import signal
import time
import traceback
from typing import Any, Callable, Iterable, Iterator

# forkserver: workers are forked from a clean server process rather than from the caller, which
# may hold threads (JAX, grain) that make a plain fork unsafe; a replacement worker still starts
# in milliseconds.
_START_METHOD = "forkserver"
_STARTUP_LIMIT_S = 120.0  # A worker that cannot even import its modules in this time is a bug.


@dataclasses.dataclass(frozen=True)
class TaskFailure:
  """Stands in for the result of a task that did not finish normally."""
  kind: str  # "timeout": killed after time_limit; "crash": the worker died; "error": fn raised.
  detail: str  # One line saying what happened.


def _worker_main(conn: connection.Connection, fn: Callable[[Any], Any]) -> None:
  # The parent handles Ctrl-C and stops the workers; a worker must not die half-way on its own.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  conn.send("ready")
  while True:
    chunk = conn.recv()
    if chunk is None:
      return
    for index, task in chunk:
      try:
        result = fn(task)
      except Exception as exc:  # pylint: disable=broad-except
        # fn is expected to turn bad input into a result; anything else is reported, not fatal.
        last = traceback.extract_tb(exc.__traceback__)[-1]
        result = TaskFailure("error", f"{type(exc).__name__}: {exc} "
                                      f"({last.filename}:{last.lineno})")
      conn.send((index, result))


class _Worker:
  """One worker process, the tasks sent to it and not yet answered, and when it began the first."""

  def __init__(self, context, fn: Callable[[Any], Any]):
    self.conn, child_conn = context.Pipe(duplex=True)
    self.process = context.Process(target=_worker_main, args=(child_conn, fn), daemon=True)
    self.process.start()
    child_conn.close()
    self.ready = False
    self.queue: collections.deque[tuple[int, Any]] = collections.deque()
    self.since = time.monotonic()  # Start of the task at the head of the queue.

  def send(self, chunk: list[tuple[int, Any]]) -> None:
    if not self.queue:
      self.since = time.monotonic()
    self.queue.extend(chunk)
    self.conn.send(chunk)

  def kill(self) -> None:
    self.process.kill()
    self.process.join()
    self.conn.close()  # Idempotent: also called on workers that are already dead.

  def stop(self) -> None:
    try:
      self.conn.send(None)
    except OSError:
      pass
    self.process.join(timeout=5)
    if self.process.is_alive():
      self.process.kill()
      self.process.join()
    self.conn.close()


class TimedPool:
  """Maps fn over tasks in worker processes with a per-task time limit.

  Usage:
    with TimedPool(fn, workers=4, time_limit=60) as pool:
      for task, result in pool.imap(tasks):
        ...  # result is fn(task) or a TaskFailure

  fn must be a picklable module-level function (or functools.partial of one).
  """

  def __init__(self, fn: Callable[[Any], Any], workers: int, time_limit: float,
               chunk_size: int = 4, max_ahead: int = 512):
    if workers < 1:
      raise ValueError(f"workers must be at least 1, got {workers}")
    self._fn = fn
    self._num_workers = workers
    self._time_limit = time_limit
    self._chunk_size = chunk_size
    # Results are yielded in order, so a slow task makes later results wait in memory; tasks
    # further than this ahead of the oldest unfinished one are not handed out yet.
    self._max_ahead = max(max_ahead, 2 * chunk_size * workers)
    self._context = multiprocessing.get_context(_START_METHOD)
    module = getattr(fn, "func", fn).__module__
    if module != "__main__":
      self._context.set_forkserver_preload([module])
    self._workers: list[_Worker] = []
    self.restarts = 0  # Workers replaced after a timeout or crash.

  def __enter__(self) -> "TimedPool":
    self._workers = [_Worker(self._context, self._fn) for _ in range(self._num_workers)]
    return self

  def __exit__(self, *exc_info) -> None:
    failed = exc_info[0] is not None
    for worker in self._workers:
      worker.kill() if failed else worker.stop()
    self._workers = []

  def _replace(self, worker: _Worker) -> _Worker:
    self.restarts += 1
    fresh = _Worker(self._context, self._fn)
    self._workers[self._workers.index(worker)] = fresh
    return fresh

  def imap(self, tasks: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """Yields (task, fn(task) or TaskFailure) for every task, in the order of tasks."""
    if not self._workers:
      raise RuntimeError("TimedPool.imap must be called inside `with TimedPool(...)`")
    source = enumerate(tasks)
    retry: collections.deque[tuple[int, Any]] = collections.deque()  # From replaced workers.
    held: list[tuple[int, Any]] = []  # Taken from source but too far ahead to hand out yet.
    source_done = False
    done: dict[int, tuple[Any, Any]] = {}
    next_out = 0  # Index of the next result to yield.

    def take(count: int) -> list[tuple[int, Any]]:
      nonlocal source_done
      chunk = []
      while len(chunk) < count and retry:
        chunk.append(retry.popleft())
      while len(chunk) < count and (held or not source_done):
        if not held:
          try:
            held.append(next(source))
          except StopIteration:
            source_done = True
            break
        if held[0][0] >= next_out + self._max_ahead:
          break
        chunk.append(held.pop())
      return chunk

    while True:
      # Hand out work: keep two chunks queued per worker so none idles between chunks.
      for worker in self._workers:
        if worker.ready and len(worker.queue) < self._chunk_size:
          chunk = take(self._chunk_size)
          if chunk:
            try:
              worker.send(chunk)
            except OSError:  # The worker died since the last check (a crash in its task).
              for _ in chunk:
                worker.queue.pop()
              retry.extendleft(reversed(chunk))
              if not worker.queue:  # Nothing of its own to blame: just replace it.
                self._fail_head(worker, "crash", done, retry)
              # Otherwise its closed pipe is read below, failing the task that killed it.
      while next_out in done:
        yield done.pop(next_out)
        next_out += 1
      busy = [w for w in self._workers if w.queue or not w.ready]
      if not busy:
        if retry or held or not source_done:
          continue  # Every worker is idle and next_out has caught up: hand out more.
        return

      now = time.monotonic()
      deadlines = [w.since + self._time_limit for w in self._workers if w.queue]
      deadlines += [w.since + _STARTUP_LIMIT_S for w in self._workers if not w.ready]
      wait_s = max(0.0, min(deadlines) - now) if deadlines else None
      ready = connection.wait([w.conn for w in busy], timeout=wait_s)
      by_conn = {w.conn: w for w in self._workers}
      for conn in ready:
        worker = by_conn[conn]
        try:
          message = conn.recv()
        except (EOFError, OSError):
          self._fail_head(worker, "crash", done, retry)
          continue
        if message == "ready":
          worker.ready = True
          continue
        index, result = message
        head_index, task = worker.queue.popleft()
        assert head_index == index, (head_index, index)
        done[index] = (task, result)
        worker.since = time.monotonic()

      now = time.monotonic()
      for worker in list(self._workers):
        if worker.queue and now - worker.since > self._time_limit:
          self._fail_head(worker, "timeout", done, retry)
        elif not worker.ready and now - worker.since > _STARTUP_LIMIT_S:
          raise RuntimeError(f"a worker process did not start within {_STARTUP_LIMIT_S:.0f} s")

  def _fail_head(self, worker: _Worker, kind: str, done: dict, retry: collections.deque) -> None:
    """Reports the task at the head of worker's queue as failed and replaces the worker."""
    elapsed = time.monotonic() - worker.since
    queue = list(worker.queue)
    worker.kill()
    if not worker.ready and not queue:
      raise RuntimeError(f"a worker process died while starting (exit code "
                         f"{worker.process.exitcode}); see its error above")
    self._replace(worker)
    if not queue:
      return
    (index, task), rest = queue[0], queue[1:]
    if kind == "timeout":
      detail = f"no result after {elapsed:.1f} s (limit {self._time_limit:g} s); worker killed"
    else:
      detail = f"the worker process died (exit code {worker.process.exitcode})"
    done[index] = (task, TaskFailure(kind, detail))
    retry.extendleft(reversed(rest))
