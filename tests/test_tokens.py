"""Tests of the 16-steps-per-bar grid and the 130-state monophonic tokens."""

import numpy as np
import pytest

from data_pipeline import midi_io
from data_pipeline import tokens as tokens_lib
from data_pipeline import tracks
from data_pipeline.tokens import HOLD, SILENT

SONG = "miditok/Aicha.mid"  # drums, bass, guitar/piano and strings all play


def _tokens(notes, num_steps):
  """Tokens of (start_step, end_step, pitch) notes."""
  starts, ends, pitches = (np.array(column, np.int64) for column in zip(*notes))
  return tokens_lib.monophonic_tokens(starts, ends, pitches.astype(np.int16), num_steps)


def test_constants_are_the_shared_contract():
  assert (tokens_lib.NUM_CLASSES, SILENT, HOLD, tokens_lib.STEPS_PER_BAR) == (130, 128, 129, 16)
  assert tokens_lib.TRACKS == ("drums", "bass", "guitar", "strings")


def test_ticks_round_to_the_nearest_step_halves_up():
  # 480 ticks per quarter: 120 ticks per step; 60 is half a step.
  steps = tokens_lib.ticks_to_steps(np.array([0, 59, 60, 119, 180, 479, 480]), 480)
  np.testing.assert_array_equal(steps, [0, 0, 1, 1, 2, 4, 4])
  # 90 ticks per quarter: 22.5 ticks per step, exactly, in integers.
  np.testing.assert_array_equal(tokens_lib.ticks_to_steps(np.array([11, 12, 45, 56]), 90),
                                [0, 1, 2, 2])


def test_a_note_shorter_than_a_step_lasts_one_step():
  starts, ends = tokens_lib.note_steps(np.array([0, 100, 130]), np.array([10, 110, 131]), 480)
  np.testing.assert_array_equal(starts, [0, 1, 1])
  np.testing.assert_array_equal(ends, [1, 2, 2])


def test_lowest_sounding_pitch_onsets_holds_and_silence():
  tokens = _tokens([(0, 4, 60), (2, 8, 52), (10, 12, 70)], 14)
  # 60 starts; 52 starts under it and is lower; it holds; silence; 70.
  np.testing.assert_array_equal(
      tokens, [60, HOLD, 52, HOLD, HOLD, HOLD, HOLD, HOLD, SILENT, SILENT, 70, HOLD, SILENT,
               SILENT])


def test_a_restruck_note_is_an_onset_not_a_hold():
  np.testing.assert_array_equal(_tokens([(0, 2, 60), (2, 4, 60)], 4), [60, HOLD, 60, HOLD])
  # Overlapping notes of one pitch: the second start is still an onset.
  np.testing.assert_array_equal(_tokens([(0, 4, 60), (2, 4, 60)], 4), [60, HOLD, 60, HOLD])


def test_a_higher_note_left_sounding_becomes_an_onset():
  # 48 ends at step 2 while 64 goes on: HOLD would mean 48 goes on, so 64 is written.
  np.testing.assert_array_equal(_tokens([(0, 2, 48), (0, 4, 64)], 5), [48, HOLD, 64, HOLD, SILENT])


def test_notes_from_tokens_inverts_tokenisation():
  rng = np.random.default_rng(0)
  for _ in range(50):
    tokens = rng.choice([SILENT, HOLD, HOLD, HOLD, 40, 41, 60], size=64).astype(np.uint8)
    # Valid sequences only: a HOLD continues an onset or a HOLD.
    for step in range(64):
      if tokens[step] == HOLD and (step == 0 or tokens[step - 1] == SILENT):
        tokens[step] = SILENT
    starts, ends, pitches = tokens_lib.notes_from_tokens(tokens)
    np.testing.assert_array_equal(
        tokens_lib.monophonic_tokens(starts, ends, pitches, len(tokens)), tokens)


def test_sounding_pitch_resolves_holds():
  tokens = np.array([[60, SILENT], [HOLD, 40], [HOLD, HOLD], [SILENT, 41], [HOLD, HOLD]], np.uint8)
  np.testing.assert_array_equal(tokens_lib.sounding_pitch(tokens),
                                [[60, SILENT], [60, 40], [60, 40], [SILENT, 41], [SILENT, 41]])


@pytest.fixture(scope="module")
def song(shared_data):
  return midi_io.read_midi((shared_data / "midi" / SONG).read_bytes())


def _columns(song):
  """(instrument, its tokens over its own grid) for each non-empty instrument."""
  tpq = song.ticks_per_quarter
  for instrument in song.instruments:
    starts, ends = tokens_lib.note_steps(instrument.start_ticks, instrument.end_ticks, tpq)
    num_steps = int(ends.max())
    yield instrument, (starts, ends), tokens_lib.monophonic_tokens(
        starts, ends, instrument.pitches, num_steps)


def test_tokens_of_a_real_song_follow_its_notes(song):
  for instrument, (starts, ends), tokens in _columns(song):
    # The lowest sounding pitch per step, note by note.
    lowest = np.full(len(tokens), tokens_lib.NUM_PITCHES)
    for start, end, pitch in zip(starts, ends, instrument.pitches):
      lowest[start:end] = np.minimum(lowest[start:end], pitch)
    np.testing.assert_array_equal(tokens == SILENT, lowest == tokens_lib.NUM_PITCHES)
    np.testing.assert_array_equal(tokens_lib.sounding_pitch(tokens)[tokens != SILENT],
                                  lowest[tokens != SILENT])
    # A note starting at the lowest pitch is an onset there, never a HOLD.
    lowest_starts = starts[instrument.pitches == lowest[starts]]
    assert len(lowest_starts) > 0
    assert np.all(tokens[lowest_starts] < tokens_lib.NUM_PITCHES)


def test_dense_and_sparse_lowest_pitch_agree_on_a_real_song(song, monkeypatch):
  columns = list(_columns(song))
  monkeypatch.setattr(tokens_lib, "_MAX_NOTE_STEPS_PER_STEP", -1)  # always dense
  for instrument, (starts, ends), sparse in columns:
    dense = tokens_lib.monophonic_tokens(starts, ends, instrument.pitches, len(sparse))
    np.testing.assert_array_equal(dense, sparse)
  assert {tracks.track_class(i.program, i.is_drum) for i, _, _ in columns} == {0, 1, 2, 3}
