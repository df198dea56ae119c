"""Window descriptors, reconstruction scores, Hamming distances and the PNG drawings."""

import math

import matplotlib.image
import numpy as np
import pytest

from data_pipeline.tokens import HOLD, SILENT
from musae_jax.tools import music_metrics
from musae_jax.tools import plots

_ = SILENT  # Reads as a silent step in the hand-written windows below.


def _window(*tracks, steps=16):
  """[steps, 4] tokens from up to four per-track lists (padded with SILENT)."""
  window = np.full((steps, 4), SILENT, np.uint8)
  for column, track in enumerate(tracks):
    window[:len(track), column] = track
  return window


# Track 1: notes 60 (3 steps), 62 (2 steps), 67 (1 step); a HOLD after silence is silence.
_MELODY = [60, HOLD, HOLD, _, 62, HOLD, 67, _, HOLD, HOLD]


def test_sounding_pitch_follows_holds_and_ignores_a_hold_after_silence():
  window = _window([HOLD, 36, HOLD], _MELODY)
  sounding = music_metrics.sounding_pitch(window)
  assert sounding[:4, 0].tolist() == [-1, 36, 36, -1]
  assert sounding[:10, 1].tolist() == [60, 60, 60, -1, 62, 62, 67, -1, -1, -1]


def test_descriptors_of_a_hand_counted_bar():
  d = music_metrics.window_descriptors(_window([], _MELODY))
  assert d["note_density"][1] == 3
  assert d["mean_note_length"][1] == 2.0  # 6 sounding steps / 3 notes
  assert d["mean_pitch"][1] == pytest.approx((60 + 62 + 67) / 3)
  assert d["mean_pitch_step"][1] == pytest.approx((2 + 5) / 2)
  assert d["pitch_range"][1] == 7
  assert d["pitch_classes"][1] == 3  # C, D, G
  assert d["silent_rate"][1] == pytest.approx(1 - 6 / 16)
  # An empty track: no note, so per-note descriptors are undefined, silence is total.
  assert d["note_density"][0] == 0 and d["silent_rate"][0] == 1.0
  for name in ("mean_note_length", "mean_pitch", "mean_pitch_step", "pitch_range"):
    assert math.isnan(d[name][0]), name


def test_descriptors_are_per_bar_and_batched():
  two_bars = _window([], _MELODY, steps=32)
  batch = np.stack([two_bars, _window([], [72, 74], steps=32)])
  d = music_metrics.window_descriptors(batch)
  assert d["note_density"].shape == (2, 4)
  assert d["note_density"][0, 1] == 1.5  # 3 notes over 2 bars
  assert d["mean_pitch"][1, 1] == 73.0
  assert d["mean_pitch_step"][1, 1] == 2.0


def test_perfect_reconstruction_scores_one():
  window = _window([36, _, 38, _], _MELODY, [48, HOLD, HOLD, HOLD], [])
  counts = music_metrics.ReconstructionCounts()
  counts.update(window[None], window[None])
  scores = counts.scores()
  assert scores["accuracy"] == {"drums": 1.0, "bass": 1.0, "guitar": 1.0, "strings": 1.0,
                                "mean": 1.0, "mean_dbg": 1.0}
  assert scores["onset_f1"]["bass"] == 1.0 and scores["note_accuracy"]["drums"] == 1.0
  # Strings has no onset in either: undefined, and left out of the mean.
  assert math.isnan(scores["onset_f1"]["strings"]) and scores["onset_f1"]["mean"] == 1.0


def test_hold_and_silent_inflate_accuracy_but_not_note_scores():
  target = _window([], [60] + [HOLD] * 15)
  predicted = _window([], [_] + [HOLD] * 15)  # misses the only note
  counts = music_metrics.ReconstructionCounts()
  counts.update(predicted[None], target[None])
  scores = counts.scores()
  assert scores["accuracy"]["bass"] == pytest.approx(15 / 16)
  assert scores["note_accuracy"]["bass"] == 0.0
  assert scores["onset_f1"]["bass"] == 0.0


def test_onset_f1_counts_spurious_onsets_that_note_accuracy_ignores():
  target = _window([], [60, HOLD, HOLD, HOLD])
  predicted = _window([], [60, 61, 62, 63])
  counts = music_metrics.ReconstructionCounts()
  counts.update(predicted[None], target[None])
  scores = counts.scores()
  assert scores["note_accuracy"]["bass"] == 1.0
  assert scores["onset_f1"]["bass"] == pytest.approx(2 * 1 / (4 + 1))


def test_counts_accumulate_over_batches_like_one_batch():
  rng = np.random.default_rng(0)
  target = rng.choice([60, 62, SILENT, HOLD], size=(6, 32, 4)).astype(np.uint8)
  predicted = rng.choice([60, 62, SILENT, HOLD], size=(6, 32, 4)).astype(np.uint8)
  whole, parts = music_metrics.ReconstructionCounts(), music_metrics.ReconstructionCounts()
  whole.update(predicted, target)
  parts.update(predicted[:2], target[:2])
  parts.update(predicted[2:], target[2:])
  assert whole.scores() == parts.scores()
  assert whole.scores()["accuracy"]["drums"] == pytest.approx(
      float((predicted[..., 0] == target[..., 0]).mean()))


def test_hamming_distance_and_bernoulli_baseline():
  a = _window([36] * 16, [60] * 16, [64] * 16, [67] * 16)
  b = _window([38] * 16, [60] * 16, [64] * 16, [67] * 16)  # one track of four differs
  assert music_metrics.hamming_distance(a, a) == 0.0
  assert music_metrics.hamming_distance(a, b) == 0.25
  rng = np.random.default_rng(0)
  assert (music_metrics.bernoulli_interpolation(rng, a, b, 0.0) == a).all()
  assert (music_metrics.bernoulli_interpolation(rng, a, b, 1.0) == b).all()
  many_a, many_b = np.repeat(a[None], 400, 0), np.repeat(b[None], 400, 0)
  mixed = music_metrics.bernoulli_interpolation(rng, many_a, many_b, 0.3)
  assert music_metrics.hamming_distance(mixed, many_a).mean() == pytest.approx(0.25 * 0.3, abs=0.01)


def _dark_fraction(path):
  image = matplotlib.image.imread(path)[..., :3]
  return float((image.mean(axis=-1) < 0.5).mean())


def test_pianoroll_and_grid_pngs_show_the_notes(tmp_path):
  window = _window([36, _, 38, _] * 8, _MELODY * 3, [48] + [HOLD] * 31, [72, 74] * 16, steps=32)
  empty = _window(steps=32)
  full = plots.pianoroll(window, str(tmp_path / "roll.png"), title="a window")
  blank = plots.pianoroll(empty, str(tmp_path / "empty.png"))
  assert _dark_fraction(full) > _dark_fraction(blank)
  grid = plots.pianoroll_grid([window, empty, window], str(tmp_path / "grid.png"),
                              column_titles=["0", "0.5", "1"])
  assert matplotlib.image.imread(grid).shape[1] > matplotlib.image.imread(full).shape[1] / 2


def test_heatmap_curves_and_scatter_write_pngs(tmp_path):
  matrix = np.array([[0.1, -0.2, np.nan], [0.0, 0.3, -0.1]])
  paths = [
      plots.heatmap(matrix, ["a", "b"], ["x", "y", "z"], str(tmp_path / "h.png"), title="t"),
      plots.curves(np.linspace(0, 1, 11), {"latent": np.linspace(0, 0.5, 11)},
                   str(tmp_path / "c.png"), "alpha", "hamming"),
      plots.scatter_pairs([("pop", "rock", np.random.default_rng(0).normal(size=(20, 2)),
                            np.arange(20) % 2 == 0)], str(tmp_path / "s.png")),
  ]
  for path in paths:
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
