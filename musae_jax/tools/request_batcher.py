"""One model call serving many concurrent callers (the explorer's HTTP threads)."""

import threading

import numpy as np


class RequestBatcher:
  """Runs a batched function for concurrent callers: whoever finds it idle runs it on every
  request waiting at that moment (concatenated, at most max_rows rows), then on the next ones,
  while the others wait for their rows. One model call at a time, and 8 clients cost about one
  batched call rather than 8 queued ones."""

  def __init__(self, function, max_rows: int = 64):
    self._function = function
    self._max_rows = max_rows
    self._lock = threading.Lock()
    self._pending: list[dict] = []
    self._running = False

  def __call__(self, rows: np.ndarray) -> np.ndarray:
    request = {"rows": rows, "done": threading.Event(), "result": None, "error": None}
    with self._lock:
      self._pending.append(request)
      leader = not self._running
      self._running = True
    if leader:
      self._drain()
    request["done"].wait()
    if request["error"] is not None:
      raise request["error"]
    return request["result"]

  def _drain(self) -> None:
    while True:
      with self._lock:
        batch, count = [], 0
        while self._pending and (not batch or
                                 count + len(self._pending[0]["rows"]) <= self._max_rows):
          batch.append(self._pending.pop(0))
          count += len(batch[-1]["rows"])
        if not batch:
          self._running = False
          return
      try:
        results = self._function(np.concatenate([r["rows"] for r in batch]))
        start = 0
        for request in batch:
          request["result"] = results[start:start + len(request["rows"])]
          start += len(request["rows"])
      except Exception as error:  # pylint: disable=broad-except  # Handed to each caller.
        for request in batch:
          request["error"] = error
      for request in batch:
        request["done"].set()
