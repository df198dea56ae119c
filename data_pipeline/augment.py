"""Transposition augmentation of token windows (MusAE: a random shift in [-5, +6] semitones).

Only note onsets (classes 0..127) of the pitched tracks (bass, guitar, strings) move; drums keep
their General MIDI percussion keys, and SILENT/HOLD are not pitches. A shift that would push a
note outside 0..127 is never drawn: the shift range is clipped per window to what keeps every
pitched note in range, so no note is ever dropped or wrapped.

Functions take a batch of windows, uint8 [B, steps, 4], and draw one shift per window.
"""

import numpy as np

from data_pipeline import tokens as tokens_lib

_PITCHED = slice(1, None)  # Columns of bass, guitar and strings; column 0 is drums.


def allowed_shifts(windows: np.ndarray, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
  """Per window, the part of [low, high] that keeps every pitched note within 0..127.

  Args:
    windows: uint8 [B, steps, 4].
    low: smallest wanted shift in semitones.
    high: largest wanted shift in semitones.

  Returns:
    (lows, highs), int [B] each; (0, 0) for a window where no shift of [low, high] fits
    (possible only when the wanted range excludes 0).
  """
  pitched = windows[:, :, _PITCHED].reshape(len(windows), -1).astype(np.int16)
  is_note = pitched < tokens_lib.NUM_PITCHES
  # A window without pitched notes can move by anything: its bounds stay low and high.
  lowest = np.where(is_note, pitched, tokens_lib.NUM_PITCHES).min(
      axis=1, initial=tokens_lib.NUM_PITCHES).astype(np.int64)
  highest = np.where(is_note, pitched, -1).max(axis=1, initial=-1).astype(np.int64)
  lows = np.maximum(low, -lowest)
  highs = np.minimum(high, tokens_lib.NUM_PITCHES - 1 - highest)
  empty = lows > highs
  return np.where(empty, 0, lows), np.where(empty, 0, highs)


def transpose(windows: np.ndarray, shifts: np.ndarray) -> np.ndarray:
  """Returns windows with the pitched notes of window i moved by shifts[i] semitones.

  Raises ValueError if a shift moves a note outside 0..127 (see allowed_shifts).
  """
  windows = np.asarray(windows)
  pitched = windows[:, :, _PITCHED].astype(np.int16)  # int16: no uint8 wrap-around.
  is_note = pitched < tokens_lib.NUM_PITCHES
  moved = pitched + np.asarray(shifts, np.int16).reshape(-1, 1, 1)
  if ((moved < 0) | (moved >= tokens_lib.NUM_PITCHES))[is_note].any():
    raise ValueError("a transposition moves a note outside the MIDI range 0..127")
  out = np.array(windows, copy=True)
  out[:, :, _PITCHED] = np.where(is_note, moved, pitched)
  return out


def random_transpose(windows: np.ndarray, rng: np.random.Generator, low: int = -5,
                     high: int = 6) -> np.ndarray:
  """Transposes each window by a shift drawn uniformly from its allowed part of [low, high]."""
  lows, highs = allowed_shifts(windows, low, high)
  return transpose(windows, rng.integers(lows, highs + 1))
