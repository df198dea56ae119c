"""The work a build worker does for one MIDI file: read it, hash it, cut it into windows.

Runs in worker processes (see timed_pool), so it imports only what extraction needs. Every kind
of bad input becomes a `Rejection` result carrying one line for the log; nothing raised here may
stop a build.
"""

import dataclasses
import hashlib
import time

from data_pipeline import song as song_lib


@dataclasses.dataclass(frozen=True)
class Rejection:
  """A file that gives no windows: a reason key for the statistics and one line for the log."""
  reason: str
  message: str
  dropped: dict[str, int] = dataclasses.field(default_factory=dict)  # Windows cut, then dropped.
  cpu_seconds: float = 0.0  # Spent on the file by the worker.


@dataclasses.dataclass(frozen=True)
class ExtractedSong:
  md5: str  # Of the file's bytes: decides the song's split.
  windows: song_lib.SongWindows
  cpu_seconds: float = 0.0  # Spent on the file by the worker.


@dataclasses.dataclass(frozen=True)
class Task:
  path: str  # Absolute path of the MIDI file.
  bars: int
  max_silent_bars: float
  max_combinations: int


def extract(task: Task) -> ExtractedSong | Rejection:
  """Reads task.path once and extracts its windows, or says why it cannot."""
  start = time.process_time()
  result = _extract(task)
  return dataclasses.replace(result, cpu_seconds=time.process_time() - start)


def _extract(task: Task) -> ExtractedSong | Rejection:
  try:
    with open(task.path, "rb") as f:
      data = f.read()
  except OSError as exc:
    return Rejection("unreadable", f"{task.path}: rejected: cannot be read "
                                   f"({exc.strerror or type(exc).__name__})")
  md5 = hashlib.md5(data).hexdigest()
  try:
    windows = song_lib.extract_windows(task.path, task.bars,
                                       max_silent_bars=task.max_silent_bars,
                                       max_combinations=task.max_combinations, data=data)
  except song_lib.RejectedSong as exc:
    return Rejection(exc.reason, str(exc))
  if not len(windows.tokens):
    # Not a RejectedSong (the song passed the filter), but the file adds nothing to the dataset.
    return Rejection("no_windows", f"{task.path}: rejected: every {task.bars}-bar window was "
                                   f"dropped ({_describe(windows.dropped)})", windows.dropped)
  return ExtractedSong(md5=md5, windows=windows)


def _describe(dropped: dict[str, int]) -> str:
  return ", ".join(f"{count} {reason}" for reason, count in sorted(dropped.items())) or "none"
