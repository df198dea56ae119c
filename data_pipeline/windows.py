"""Training windows of a song: track cross product, sliding windows, silence rule, dedup.

A window is `bars` bars (16 steps each) of a song's 4-column token matrix; one
starts at every bar. Each drums x bass x guitar/piano combination of the song
gives its own matrix (the paper's cross product); the strings column, all
other instruments merged, is shared by every combination.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from data_pipeline import tokens as tokens_lib


def track_combinations(class_sizes: Sequence[int],
                       max_combinations: int) -> list[tuple[int, int, int]]:
  """Indices (drums, bass, guitar) of the combinations to use, best first.

  `class_sizes` are the numbers of drums, bass and guitar/piano instruments,
  each list ordered best first (tracks.instruments_by_class ranks them by note
  count). A song with many tracks would give hundreds of combinations, so at
  most `max_combinations` are kept: those with the smallest sum of per-class
  ranks, ties in lexicographic order; the first one always pairs each class's
  main instrument.
  """
  limit = max(1, max_combinations)
  # An instrument ranked r in its class only appears in combinations with a
  # rank sum >= r, and at least r combinations have a smaller sum: ranks
  # >= limit can never be chosen, which bounds the work for huge files.
  ranges = [range(min(size, limit)) for size in class_sizes[:3]]
  combinations = sorted(itertools.product(*ranges), key=lambda c: (sum(c), c))
  return combinations[:limit]


def num_windows(num_bars: int, bars: int) -> int:
  """Windows of `bars` bars starting at every bar of a `num_bars`-bar song."""
  return max(0, num_bars - bars + 1)


def long_silence(column: np.ndarray, bars: int, max_silent_bars: float | None) -> np.ndarray:
  """bool [num_windows]: whether a window has a silent stretch longer than allowed.

  `column` is one track's tokens over the whole song (a whole number of bars).
  A window is flagged when it holds more than floor(max_silent_bars * 16)
  consecutive SILENT steps of this track (the paper drops windows with a track
  silent for more than one bar); max_silent_bars None or inf flags nothing.
  """
  count = num_windows(len(column) // tokens_lib.STEPS_PER_BAR, bars)
  window_steps = bars * tokens_lib.STEPS_PER_BAR
  if max_silent_bars is None or math.isinf(max_silent_bars):
    return np.zeros(count, bool)
  if max_silent_bars < 0:
    raise ValueError(f"max_silent_bars must be >= 0, got {max_silent_bars}")
  run = math.floor(max_silent_bars * tokens_lib.STEPS_PER_BAR) + 1  # shortest bad stretch
  if run > window_steps:
    return np.zeros(count, bool)
  silent = np.concatenate([[0], np.cumsum(column == tokens_lib.SILENT)])
  # long_from[t]: steps t .. t+run-1 are all silent.
  long_from = (silent[run:] - silent[:-run]) == run
  seen = np.concatenate([[0], np.cumsum(long_from)])
  starts = np.arange(count) * tokens_lib.STEPS_PER_BAR
  # A window [a, a + window_steps) is bad when some t in [a, a+window_steps-run] is.
  return seen[starts + window_steps - run + 1] - seen[starts] > 0


def cut_windows(matrix: np.ndarray, bars: int, start_bars: np.ndarray) -> np.ndarray:
  """uint8 [len(start_bars), bars*16, 4] windows of a [steps, 4] token matrix.

  A window never starts with HOLD: a note that began before the window and
  goes on at its first step becomes an onset of its pitch there.
  """
  window_steps = bars * tokens_lib.STEPS_PER_BAR
  first_steps = start_bars * tokens_lib.STEPS_PER_BAR
  windows = matrix[first_steps[:, None] + np.arange(window_steps)]
  for track in range(matrix.shape[1]):
    held = np.flatnonzero(windows[:, 0, track] == tokens_lib.HOLD)
    if len(held):
      column = matrix[:, track]
      not_hold = np.flatnonzero(column != tokens_lib.HOLD)
      # The onset that the HOLD continues: the last non-HOLD step before it.
      onset_steps = not_hold[np.searchsorted(not_hold, first_steps[held]) - 1]
      windows[held, 0, track] = column[onset_steps]
  return windows


def first_occurrences(windows: np.ndarray) -> np.ndarray:
  """Sorted indices of the first occurrence of each distinct window."""
  if not len(windows):
    return np.zeros(0, np.int64)
  rows = np.ascontiguousarray(windows.reshape(len(windows), -1))
  keys = rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).ravel()
  _, first = np.unique(keys, return_index=True)
  return np.sort(first)
