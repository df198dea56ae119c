"""The 16-steps-per-bar grid and the 130-state monophonic tokens.

A token matrix has shape [steps, 4], one column per track in TRACKS order. Each
entry is one of 130 classes:
  0..127  a note starting at that MIDI pitch at this step,
  128     SILENT: no note sounds,
  129     HOLD: the note that sounded at the previous step goes on.
A song's grid comes from its MIDI ticks: STEPS_PER_QUARTER steps per quarter
note, so a 4/4 bar is STEPS_PER_BAR steps.
"""

import numpy as np

NUM_PITCHES = 128  # MIDI pitches 0..127 are the onset classes.
SILENT = 128  # No note sounds at this step.
HOLD = 129  # The previous step's note goes on.
NUM_CLASSES = 130  # Classes per track and step.
STEPS_PER_QUARTER = 4  # Grid resolution: a sixteenth note per step.
STEPS_PER_BAR = 16  # Only 4/4 songs are kept, so a bar is 4 quarters.
TRACKS = ("drums", "bass", "guitar", "strings")  # Column order of every token matrix.
NUM_TRACKS = len(TRACKS)
NO_PITCH = -1  # "nothing sounds" in int16 pitch arrays.


def ticks_to_steps(ticks: np.ndarray, ticks_per_quarter: int) -> np.ndarray:
  """Grid steps nearest to MIDI ticks (halves round up), in exact integers."""
  ticks = np.asarray(ticks, np.int64)
  return (2 * STEPS_PER_QUARTER * ticks + ticks_per_quarter) // (2 * ticks_per_quarter)


def note_steps(start_ticks: np.ndarray, end_ticks: np.ndarray,
               ticks_per_quarter: int) -> tuple[np.ndarray, np.ndarray]:
  """Start and end steps of notes: both rounded, and at least one step long."""
  starts = ticks_to_steps(start_ticks, ticks_per_quarter)
  ends = np.maximum(ticks_to_steps(end_ticks, ticks_per_quarter), starts + 1)
  return starts, ends


# Above this many note-steps per grid step, lowest_pitch uses a dense
# [steps, pitches] count instead of expanding every note into its steps, which
# bounds memory for files with thousands of very long notes.
_MAX_NOTE_STEPS_PER_STEP = 32


def lowest_pitch(start_steps: np.ndarray, end_steps: np.ndarray, pitches: np.ndarray,
                 num_steps: int) -> np.ndarray:
  """int16 [num_steps]: the lowest pitch sounding at each step, or NO_PITCH.

  A note sounds on steps start..end-1. Notes past num_steps are cut.
  """
  start_steps = np.minimum(start_steps, num_steps)
  end_steps = np.minimum(end_steps, num_steps)
  durations = end_steps - start_steps
  total = int(durations.sum())
  if total <= _MAX_NOTE_STEPS_PER_STEP * max(num_steps, 1):
    # Expand every note into its steps and keep the minimum pitch per step.
    first_of_note = np.repeat(np.cumsum(durations) - durations, durations)
    steps = np.repeat(start_steps, durations) + (np.arange(total) - first_of_note)
    lowest = np.full(num_steps, NUM_PITCHES, np.int16)
    np.minimum.at(lowest, steps, np.repeat(pitches.astype(np.int16), durations))
  else:
    counts = np.zeros((num_steps + 1, NUM_PITCHES), np.int32)
    np.add.at(counts, (start_steps, pitches), 1)
    np.add.at(counts, (end_steps, pitches), -1)
    sounding = np.cumsum(counts[:-1], axis=0) > 0
    lowest = np.where(sounding.any(axis=1), sounding.argmax(axis=1),
                      NUM_PITCHES).astype(np.int16)
  lowest[lowest == NUM_PITCHES] = NO_PITCH
  return lowest


def monophonic_tokens(start_steps: np.ndarray, end_steps: np.ndarray, pitches: np.ndarray,
                      num_steps: int) -> np.ndarray:
  """uint8 [num_steps]: the tokens of one track (one or several instruments merged).

  At each step the lowest sounding pitch is kept. It is an onset (its pitch)
  when a note of that pitch starts at this step, including a note re-struck at
  the same pitch; HOLD when the same pitch sounded at the previous step and
  no note of it starts now; SILENT when nothing sounds. When the lowest pitch
  changes without a note starting (a lower note ended while a higher one goes
  on), the new pitch is written as an onset, since HOLD would mean the
  previous pitch goes on.
  """
  lowest = lowest_pitch(start_steps, end_steps, pitches, num_steps)
  onset = np.zeros(num_steps, bool)
  in_range = start_steps < num_steps
  starts, note_pitches = start_steps[in_range], pitches[in_range]
  onset[starts[lowest[starts] == note_pitches]] = True
  previous = np.concatenate([[NO_PITCH], lowest])[:-1]
  tokens = np.where(lowest == NO_PITCH, SILENT, lowest).astype(np.uint8)
  tokens[(lowest != NO_PITCH) & (lowest == previous) & ~onset] = HOLD
  return tokens


def sounding_pitch(tokens: np.ndarray, axis: int = 0) -> np.ndarray:
  """The pitch token sounding at each step: HOLD replaced by the onset it continues.

  SILENT stays SILENT, and so does a HOLD that follows SILENT (it continues
  nothing); HOLDs before any other token along `axis` stay HOLD.
  """
  tokens = np.moveaxis(np.asarray(tokens), axis, 0)
  steps = np.arange(tokens.shape[0]).reshape((-1,) + (1,) * (tokens.ndim - 1))
  last_set = np.maximum.accumulate(np.where(tokens != HOLD, steps, 0), axis=0)
  return np.moveaxis(np.take_along_axis(tokens, last_set, axis=0), 0, axis)


def notes_from_tokens(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(start_steps, end_steps, pitches) of the notes in one track's tokens.

  A note starts at each onset token and ends at the next token that is not
  HOLD. A HOLD after SILENT or at step 0 continues nothing and is ignored.
  """
  tokens = np.asarray(tokens)
  onsets = np.flatnonzero(tokens < NUM_PITCHES)
  not_hold = np.flatnonzero(tokens != HOLD)
  # The end of each note is the first non-HOLD step after its onset.
  next_index = np.searchsorted(not_hold, onsets, side="right")
  ends = np.append(not_hold, len(tokens))[next_index]
  return onsets, ends, tokens[onsets].astype(np.int16)
