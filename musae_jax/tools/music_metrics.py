"""Musical metrics of token windows, computed on the fixed-length grid (numpy, any batch shape).

Tokens are [..., T, 4] integer arrays (see data_pipeline/tokens.py): a pitch 0..127 starts a
note, HOLD continues the sounding note, SILENT (or a HOLD with nothing to continue) is silence.
Metric libraries that measure a song from its last note end miss a window's trailing silence
(DESIGN.md), so everything here is counted on the grid itself.

Three families:
  * low-level descriptors of a window and track (note density, mean pitch, ...), used by the
    Figure 3 heatmap and by the attribute vectors; NaN where a track has no note;
  * reconstruction scores: MusAE's token accuracy (every step, hold/silent included), note
    accuracy (steps whose target starts a note) and onset F1 (a predicted onset counts when the
    same pitch starts at the same step), accumulated as counts so a dataset can be streamed;
  * the normalised Hamming distance of Figure 4 and its data-space Bernoulli baseline.
"""

import dataclasses

import numpy as np

from data_pipeline import tokens as tokens_lib
from data_pipeline.tokens import NUM_PITCHES, STEPS_PER_BAR, TRACKS

# Descriptor name -> one-line meaning (report.md prints these beside the heatmap).
DESCRIPTORS = {
    "note_density": "notes started per bar",
    "mean_note_length": "mean note length in steps (sixteenths)",
    "mean_pitch": "mean MIDI pitch of the notes",
    "mean_pitch_step": "mean absolute interval between consecutive notes (semitones)",
    "pitch_range": "highest minus lowest pitch (semitones)",
    "pitch_classes": "distinct pitch classes used",
    "silent_rate": "fraction of steps where no note sounds",
}


def sounding_pitch(tokens: np.ndarray) -> np.ndarray:
  """[..., T, 4] -> [..., T, 4] int: the pitch sounding at each step, or -1 for silence (a HOLD
  after silence or at the window start continues nothing)."""
  governing = tokens_lib.sounding_pitch(np.asarray(tokens), axis=-2).astype(np.int32)
  return np.where(governing < NUM_PITCHES, governing, -1)


def onsets(tokens: np.ndarray) -> np.ndarray:
  """[..., T, 4] bool: steps where a note starts."""
  return np.asarray(tokens) < NUM_PITCHES


def _previous_onset_pitch(tokens: np.ndarray) -> np.ndarray:
  """[..., T, 4]: at each onset, the pitch of the previous onset in the window (-1 if none)."""
  is_onset = onsets(tokens)
  steps = tokens.shape[-2]
  position = np.arange(steps).reshape((steps, 1))
  last_onset = np.maximum.accumulate(np.where(is_onset, position, -1), axis=-2)
  # Shift by one step so that an onset looks strictly before itself.
  pad = np.full_like(last_onset[..., :1, :], -1)
  previous = np.concatenate([pad, last_onset[..., :-1, :]], axis=-2)
  pitch = np.take_along_axis(np.asarray(tokens).astype(np.int32), np.maximum(previous, 0), axis=-2)
  return np.where(previous >= 0, pitch, -1)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
  numerator = np.asarray(numerator, np.float64)
  denominator = np.asarray(denominator, np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def window_descriptors(tokens: np.ndarray) -> dict[str, np.ndarray]:
  """Low-level descriptors of each window and track: name -> float [..., 4] (NaN if undefined).

  tokens: int [..., T, 4]. Every sounding step belongs to exactly one note, so the mean note
  length is sounding steps / notes.
  """
  tokens = np.asarray(tokens).astype(np.int32)
  steps = tokens.shape[-2]
  is_onset = onsets(tokens)
  notes = is_onset.sum(axis=-2)
  sounding = (sounding_pitch(tokens) >= 0).sum(axis=-2)
  pitch = np.where(is_onset, tokens, 0)
  previous = _previous_onset_pitch(tokens)
  has_previous = is_onset & (previous >= 0)
  intervals = np.where(has_previous, np.abs(tokens - previous), 0)
  highest = np.where(is_onset, tokens, -1).max(axis=-2)
  lowest = np.where(is_onset, tokens, NUM_PITCHES).min(axis=-2)
  classes = np.zeros(tokens.shape[:-2] + (12, tokens.shape[-1]), bool)
  for pitch_class in range(12):
    classes[..., pitch_class, :] = (is_onset & (tokens % 12 == pitch_class)).any(axis=-2)
  has_notes = notes > 0
  return {
      "note_density": notes * (STEPS_PER_BAR / steps),
      "mean_note_length": _safe_divide(sounding, notes),
      "mean_pitch": _safe_divide(pitch.sum(axis=-2), notes),
      "mean_pitch_step": _safe_divide(intervals.sum(axis=-2), has_previous.sum(axis=-2)),
      "pitch_range": np.where(has_notes, highest - lowest, np.nan),
      "pitch_classes": classes.sum(axis=-2).astype(np.float64),
      "silent_rate": 1.0 - sounding / steps,
  }


@dataclasses.dataclass
class ReconstructionCounts:
  """Per-track sums over windows; add batches with `update`, read scores with `scores`."""
  steps: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, np.int64))
  correct: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, np.int64))
  target_onsets: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, np.int64))
  predicted_onsets: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, np.int64))
  matched_onsets: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, np.int64))

  def update(self, predicted: np.ndarray, target: np.ndarray) -> None:
    """predicted, target: int [B, T, 4] tokens (predicted = argmax of the decoder)."""
    predicted = np.asarray(predicted).astype(np.int32)
    target = np.asarray(target).astype(np.int32)
    if predicted.shape != target.shape:
      raise ValueError(f"predicted {predicted.shape} and target {target.shape} differ in shape.")
    flat_steps = int(np.prod(target.shape[:-1]))
    self.steps += flat_steps
    self.correct += (predicted == target).reshape(-1, 4).sum(axis=0)
    target_onset = onsets(target)
    predicted_onset = onsets(predicted)
    self.target_onsets += target_onset.reshape(-1, 4).sum(axis=0)
    self.predicted_onsets += predicted_onset.reshape(-1, 4).sum(axis=0)
    self.matched_onsets += (target_onset & (predicted == target)).reshape(-1, 4).sum(axis=0)

  def scores(self) -> dict[str, dict[str, float]]:
    """{"accuracy", "note_accuracy", "onset_f1"} -> {track: value, "mean": mean over tracks}.

    accuracy also has "mean_dbg" (drums, bass, guitar: the paper's Table 1 "dbg" average).
    A track with no target and no predicted onset has undefined note accuracy / onset F1 (NaN),
    left out of the means.
    """
    accuracy = _safe_divide(self.correct, self.steps)
    note_accuracy = _safe_divide(self.matched_onsets, self.target_onsets)
    onset_f1 = _safe_divide(2 * self.matched_onsets, self.predicted_onsets + self.target_onsets)
    result = {}
    for name, values in (("accuracy", accuracy), ("note_accuracy", note_accuracy),
                         ("onset_f1", onset_f1)):
      per_track = {track: float(v) for track, v in zip(TRACKS, values)}
      per_track["mean"] = _nanmean(values)
      result[name] = per_track
    result["accuracy"]["mean_dbg"] = _nanmean(accuracy[:3])
    return result


def _nanmean(values: np.ndarray) -> float:
  values = np.asarray(values, np.float64)
  return float(np.mean(values[~np.isnan(values)])) if (~np.isnan(values)).any() else float("nan")


def hamming_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Normalised Hamming distance between token windows: the fraction of (step, track) entries
  that differ. a, b: [..., T, 4] -> float [...]."""
  a, b = np.asarray(a), np.asarray(b)
  return (a != b).reshape(a.shape[:-2] + (-1,)).mean(axis=-1)


def bernoulli_interpolation(rng: np.random.Generator, start: np.ndarray, end: np.ndarray,
                            alpha: float) -> np.ndarray:
  """The paper's data-space baseline: each entry comes from `end` with probability alpha, else
  from `start` (entries are independent Bernoulli draws)."""
  start, end = np.asarray(start), np.asarray(end)
  take_end = rng.random(start.shape) < alpha
  return np.where(take_end, end, start)
