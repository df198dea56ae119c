"""Transposition augmentation of token windows (MusAE: a random shift in [-5, +6] semitones).

Only note onsets (classes 0..127) of the pitched tracks (bass, guitar, strings) move; drums keep
their General MIDI percussion keys, and SILENT/HOLD are not pitches. A shift that would push a
note outside 0..127 is never drawn: the shift range is clipped per window to what keeps every
pitched note in range, so no note is ever dropped or wrapped.
"""

import numpy as np

from data_pipeline import tokens as tokens_lib

_PITCHED = slice(1, None)  # Columns of bass, guitar and strings; column 0 is drums.


def allowed_shifts(window: np.ndarray, low: int, high: int) -> tuple[int, int]:
  """The sub-range of [low, high] that keeps every pitched note of window within 0..127.

  Args:
    window: tokens [..., steps, 4].
    low: smallest wanted shift in semitones.
    high: largest wanted shift in semitones.

  Returns:
    (low, high) clipped; (0, 0) if no shift in [low, high] fits (possible only when the wanted
    range excludes 0).
  """
  pitched = window[..., _PITCHED]
  notes = pitched[pitched < tokens_lib.NUM_PITCHES]
  if notes.size:
    low = max(low, -int(notes.min()))
    high = min(high, tokens_lib.NUM_PITCHES - 1 - int(notes.max()))
  if low > high:
    return 0, 0
  return low, high


def transpose(window: np.ndarray, shift: int) -> np.ndarray:
  """Returns window with the pitched tracks' notes moved by shift semitones (a new array).

  The caller guarantees that the shift keeps every note in range (see allowed_shifts).
  """
  out = np.array(window, copy=True)
  if shift:
    pitched = out[..., _PITCHED]
    is_note = pitched < tokens_lib.NUM_PITCHES
    # int16 so that the addition cannot wrap around in uint8 before the range check.
    moved = pitched.astype(np.int16) + shift
    if is_note.any() and (moved[is_note].min() < 0
                          or moved[is_note].max() >= tokens_lib.NUM_PITCHES):
      raise ValueError(f"a shift of {shift} semitones moves a note outside 0..127")
    out[..., _PITCHED] = np.where(is_note, moved, pitched).astype(out.dtype)
  return out


def random_transpose(window: np.ndarray, rng: np.random.Generator, low: int = -5,
                     high: int = 6) -> np.ndarray:
  """Transposes window by a shift drawn uniformly from the allowed part of [low, high]."""
  low, high = allowed_shifts(window, low, high)
  return transpose(window, int(rng.integers(low, high + 1)))
