"""Tests of windows: cross product, sliding windows, silence rule, de-duplication."""

import numpy as np
import pytest

from data_pipeline import song as song_lib
from data_pipeline import tokens as tokens_lib
from data_pipeline import windows as windows_lib
from data_pipeline.tokens import HOLD, SILENT, STEPS_PER_BAR

SONGS = ["miditok/Aicha.mid", "miditok/Mr._Blue_Sky.mid", "freemidi/rock/3214.mid"]


def _longest_silence(column: np.ndarray) -> int:
  longest = run = 0
  for token in column:
    run = run + 1 if token == SILENT else 0
    longest = max(longest, run)
  return longest


def test_silence_rule_allows_one_bar_and_drops_longer():
  column = np.full(4 * STEPS_PER_BAR, 60, np.uint8)
  column[STEPS_PER_BAR:2 * STEPS_PER_BAR] = SILENT  # bar 1 silent: exactly one bar
  np.testing.assert_array_equal(windows_lib.long_silence(column, 2, 1.0), [False, False, False])
  column[2 * STEPS_PER_BAR] = SILENT  # now 17 silent steps in bars 1-2
  np.testing.assert_array_equal(windows_lib.long_silence(column, 2, 1.0), [False, True, False])
  np.testing.assert_array_equal(windows_lib.long_silence(column, 2, 2.0), [False, False, False])
  np.testing.assert_array_equal(windows_lib.long_silence(column, 2, None), [False] * 3)


def test_a_window_never_starts_with_hold():
  matrix = np.full((3 * STEPS_PER_BAR, 4), SILENT, np.uint8)
  matrix[10, 1] = 45
  matrix[11:20, 1] = HOLD  # a bass note across the bar line
  windows = windows_lib.cut_windows(matrix, 1, np.array([0, 1, 2]))
  assert windows[1, 0, 1] == 45  # the held note is sounding at bar 1's first step
  np.testing.assert_array_equal(windows[1, 1:4, 1], [HOLD] * 3)
  assert windows[2, 0, 1] == SILENT


def test_first_occurrences_keeps_the_first_of_each_window():
  windows = np.array([[[1]], [[2]], [[1]], [[3]], [[2]]], np.uint8)
  np.testing.assert_array_equal(windows_lib.first_occurrences(windows), [0, 1, 3])


def test_track_combinations_rank_by_instrument_order_and_cap():
  assert windows_lib.track_combinations([2, 1, 2], 8) == [(0, 0, 0), (0, 0, 1), (1, 0, 0),
                                                          (1, 0, 1)]
  assert windows_lib.track_combinations([3, 3, 3], 4) == [(0, 0, 0), (0, 0, 1), (0, 1, 0),
                                                          (1, 0, 0)]
  assert len(windows_lib.track_combinations([40, 40, 40], 8)) == 8


@pytest.mark.parametrize("path", SONGS)
@pytest.mark.parametrize("bars", [2, 16])
def test_windows_of_real_songs(shared_data, path, bars):
  result = song_lib.extract_windows(str(shared_data / "midi" / path), bars)
  steps = bars * STEPS_PER_BAR
  count = len(result.tokens)
  assert count > 0
  assert result.tokens.dtype == np.uint8 and result.tokens.shape == (count, steps, 4)
  assert result.start_bars.dtype == np.int32 and result.combinations.dtype == np.int32
  assert np.all(result.tokens < tokens_lib.NUM_CLASSES)
  assert not np.any(result.tokens[:, 0, :] == HOLD)
  # The silence rule: no track silent for more than one bar in a kept window.
  assert max(_longest_silence(w[:, t]) for w in result.tokens for t in range(4)) <= STEPS_PER_BAR
  # Deduplicated.
  assert len({w.tobytes() for w in result.tokens}) == count
  # Every window was cut, dropped or kept: nothing lost.
  cut = result.num_combinations * windows_lib.num_windows(result.num_bars, bars)
  assert count + result.dropped["silence"] + result.dropped["duplicate"] == cut
  assert np.all(result.start_bars + bars <= result.num_bars)
  assert set(result.combinations) <= set(range(result.num_combinations))
  # Each window is its combination's whole-song tokens at its bar (first step resolved).
  whole = song_lib.song_tokens(str(shared_data / "midi" / path))
  assert len(whole) == result.num_combinations
  assert whole[0][0] == result.programs
  for window, start, combination in zip(result.tokens, result.start_bars, result.combinations):
    matrix = whole[combination][1]
    first = start * STEPS_PER_BAR
    expected = matrix[first:first + steps]
    padding = steps - len(expected)  # song_tokens drops trailing silent bars
    assert np.all(window[steps - padding:] == SILENT)
    np.testing.assert_array_equal(window[1:steps - padding], expected[1:])
    np.testing.assert_array_equal(window[0], tokens_lib.sounding_pitch(matrix)[first])


def test_silence_rule_is_configurable(shared_data):
  path = str(shared_data / "midi" / SONGS[0])
  strict = song_lib.extract_windows(path, 2)
  lenient = song_lib.extract_windows(path, 2, max_silent_bars=float("inf"))
  assert lenient.dropped["silence"] == 0 < strict.dropped["silence"]
  assert len(lenient.tokens) > len(strict.tokens)


def test_combination_cap(shared_data):
  path = str(shared_data / "midi" / SONGS[0])
  one = song_lib.extract_windows(path, 2, max_combinations=1)
  assert one.num_combinations == 1 and set(one.combinations) == {0}
  many = song_lib.extract_windows(path, 2, max_combinations=8)
  assert many.num_combinations > 1
  # The first combination's windows are the same whatever the cap.
  first = many.tokens[many.combinations == 0]
  np.testing.assert_array_equal(first, one.tokens)
