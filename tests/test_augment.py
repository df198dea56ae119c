"""Transposition augmentation on real windows: what moves, what never does, and the range clip."""


import numpy as np
import pytest

from data_pipeline import augment
from data_pipeline import song
from data_pipeline import tokens as tokens_lib

_SONG = "miditok/Aicha.mid"  # A full pop arrangement: bass, piano/guitar, strings, drums.


@pytest.fixture(scope="module")
def windows(shared_data) -> np.ndarray:
  return song.extract_windows(str(shared_data / "midi" / _SONG), 2).tokens


def _pitched_notes(windows: np.ndarray) -> np.ndarray:
  return (windows[:, :, 1:] < tokens_lib.NUM_PITCHES)


def test_transpose_moves_only_pitched_onsets(windows):
  shifts = np.arange(len(windows)) % 12 - 5
  low, high = augment.allowed_shifts(windows, -5, 6)
  shifts = np.clip(shifts, low, high)
  moved = augment.transpose(windows, shifts)

  np.testing.assert_array_equal(moved[:, :, 0], windows[:, :, 0])  # Drums keep their keys.
  is_note = _pitched_notes(windows)
  np.testing.assert_array_equal(_pitched_notes(moved), is_note)  # SILENT/HOLD stay in place.
  np.testing.assert_array_equal(moved[:, :, 1:][~is_note], windows[:, :, 1:][~is_note])
  delta = moved[:, :, 1:].astype(int) - windows[:, :, 1:].astype(int)
  expected = np.broadcast_to(shifts[:, None, None], delta.shape)
  np.testing.assert_array_equal(delta[is_note], expected[is_note])
  assert windows.dtype == moved.dtype == np.uint8
  assert (shifts != 0).any() and is_note.any()


def test_allowed_shifts_keep_every_note_in_range():
  window = np.full((3, 32, 4), tokens_lib.SILENT, np.uint8)
  window[0, 0, 1] = 124  # Highest note 124: at most +3.
  window[0, 5, 3] = 40
  window[1, 0, 2] = 2  # Lowest note 2: at least -2.
  window[1, 1, 2] = tokens_lib.HOLD
  window[2, :, 0] = 127  # Drums only: they do not limit anything.
  lows, highs = augment.allowed_shifts(window, -5, 6)
  assert lows.tolist() == [-5, -2, -5]
  assert highs.tolist() == [3, 6, 6]
  # A range that cannot be met falls back to no shift rather than an invalid one.
  lows, highs = augment.allowed_shifts(window[:1], 4, 6)
  assert (lows.tolist(), highs.tolist()) == ([0], [0])


def test_transpose_refuses_to_leave_the_midi_range():
  window = np.full((1, 32, 4), tokens_lib.SILENT, np.uint8)
  window[0, 0, 1] = 125
  with pytest.raises(ValueError, match="outside"):
    augment.transpose(window, np.array([3]))
  assert augment.transpose(window, np.array([2]))[0, 0, 1] == 127


def test_random_transpose_draws_every_allowed_shift(windows):
  rng = np.random.default_rng(0)
  low, high = augment.allowed_shifts(windows, -5, 6)
  free = np.flatnonzero((low == -5) & (high == 6))
  assert len(free) > 0, "the song should have windows far from the MIDI range ends"
  batch = np.repeat(windows[free[:1]], 600, axis=0)
  moved = augment.random_transpose(batch, rng, -5, 6)
  is_note = _pitched_notes(batch)
  delta = moved[:, :, 1:].astype(int) - batch[:, :, 1:].astype(int)
  shifts = np.array([d[n][0] for d, n in zip(delta, is_note)])
  counts = np.bincount(shifts + 5, minlength=12)
  assert (counts > 25).all(), counts  # Uniform over 12 keys: ~50 each.
  assert set(shifts.tolist()) == set(range(-5, 7))


def test_random_transpose_never_leaves_the_range_near_the_edges(windows):
  rng = np.random.default_rng(1)
  # Push real windows towards both ends of the range, then augment many times.
  low, high = augment.allowed_shifts(windows, -127, 127)
  edges = np.concatenate([augment.transpose(windows, high), augment.transpose(windows, low)])
  for _ in range(20):
    moved = augment.random_transpose(edges, rng, -5, 6)
    is_note = _pitched_notes(edges)
    assert (moved[:, :, 1:][is_note] < tokens_lib.NUM_PITCHES).all()
    np.testing.assert_array_equal(_pitched_notes(moved), is_note)
    np.testing.assert_array_equal(moved[:, :, 0], edges[:, :, 0])
