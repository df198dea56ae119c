"""Pictures of token windows and of the evaluation results (matplotlib, Agg backend, PNG files).

  pianoroll        one window, the 4 tracks stacked (onsets dark, held steps lighter)
  pianoroll_grid   several windows side by side (an interpolation), tracks as rows
  heatmap          a signed matrix with labelled rows and columns (Figure 3)
  curves           y(alpha) lines (Figure 4)
  scatter_pairs    2-D point clouds of two classes, one panel per pair (Figure 5)
  learning_curves  a run's metrics.jsonl against steps (accuracy, note accuracy, losses, critic)
  compare_runs     several runs' training curves on shared axes
"""

import json
import os
from typing import Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # Files only: no display is needed or wanted.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from data_pipeline.tokens import NUM_PITCHES, STEPS_PER_BAR, TRACKS  # pylint: disable=C0413
from musae_jax.tools import music_metrics  # pylint: disable=wrong-import-position

_ONSET, _HELD = 1.0, 0.55  # Grey levels of a note's first step and of its continuation.


def _track_roll(tokens: np.ndarray, track: int) -> np.ndarray:
  """[128, T] image of one track: _ONSET where a note starts, _HELD where it goes on."""
  steps = tokens.shape[0]
  sounding = music_metrics.sounding_pitch(tokens)[:, track]
  is_onset = music_metrics.onsets(tokens)[:, track]
  image = np.zeros((NUM_PITCHES, steps), np.float32)
  time = np.nonzero(sounding >= 0)[0]
  image[sounding[time], time] = np.where(is_onset[time], _ONSET, _HELD)
  return image


def _pitch_window(images: Sequence[np.ndarray]) -> tuple[int, int]:
  """The pitch rows to show: the notes' span plus a margin, at least an octave."""
  rows = np.nonzero(np.any([image.any(axis=1) for image in images], axis=0))[0]
  if rows.size == 0:
    return 48, 72
  low, high = int(rows.min()) - 2, int(rows.max()) + 3
  if high - low < 12:
    middle = (low + high) // 2
    low, high = middle - 6, middle + 6
  return max(low, 0), min(high, NUM_PITCHES)


def _draw_track(axis, image: np.ndarray, low: int, high: int, steps: int) -> None:
  axis.imshow(image[low:high], aspect="auto", origin="lower", cmap="Greys", vmin=0.0, vmax=1.0,
              interpolation="nearest", extent=(0, steps, low, high))
  for bar in range(STEPS_PER_BAR, steps, STEPS_PER_BAR):
    axis.axvline(bar, color="tab:blue", linewidth=0.6, alpha=0.6)
  axis.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, nbins=5))
  axis.tick_params(labelsize=6)


def _save(figure, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  figure.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(figure)
  return path


def pianoroll(tokens: np.ndarray, path: str, title: str = "") -> str:
  """Draws one [T, 4] token window as 4 stacked pianorolls (time in steps, pitch in MIDI)."""
  tokens = np.asarray(tokens)
  steps = tokens.shape[0]
  width = min(max(4.0, steps / 16 * 2.0), 24.0)
  figure, axes = plt.subplots(4, 1, figsize=(width, 6.0), sharex=True)
  for track, axis in enumerate(axes):
    image = _track_roll(tokens, track)
    low, high = _pitch_window([image])
    _draw_track(axis, image, low, high, steps)
    axis.set_ylabel(TRACKS[track], fontsize=8)
  axes[-1].set_xlabel("step (16 per bar)", fontsize=8)
  if title:
    axes[0].set_title(title, fontsize=9)
  return _save(figure, path)


def pianoroll_grid(windows: Sequence[np.ndarray], path: str, column_titles: Sequence[str] = (),
                   title: str = "") -> str:
  """Draws N [T, 4] windows as a 4 x N grid: one row per track, one column per window.

  Each track row shares one pitch range across columns so that motion between columns shows.
  """
  windows = [np.asarray(w) for w in windows]
  steps = windows[0].shape[0]
  columns = len(windows)
  figure, axes = plt.subplots(4, columns, figsize=(1.6 * columns + 1.0, 5.5), squeeze=False,
                              sharey="row")
  for track in range(4):
    images = [_track_roll(w, track) for w in windows]
    low, high = _pitch_window(images)
    for column, image in enumerate(images):
      axis = axes[track, column]
      _draw_track(axis, image, low, high, steps)
      if column == 0:
        axis.set_ylabel(TRACKS[track], fontsize=8)
      if track == 0 and column < len(column_titles):
        axis.set_title(column_titles[column], fontsize=8)
  if title:
    figure.suptitle(title, fontsize=10)
  return _save(figure, path)


def heatmap(matrix: np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str],
            path: str, title: str = "", colorbar_label: str = "") -> str:
  """Draws a signed matrix with a diverging colour scale centred on 0 (NaN cells blank)."""
  matrix = np.asarray(matrix, np.float64)
  finite = np.abs(matrix[np.isfinite(matrix)])
  limit = float(np.percentile(finite, 98)) if finite.size else 1.0
  limit = limit if limit > 0 else 1.0
  height = 1.2 + 0.22 * len(row_labels)
  width = 2.5 + 0.28 * len(column_labels)
  figure, axis = plt.subplots(figsize=(width, height))
  shown = axis.imshow(np.ma.masked_invalid(matrix), aspect="auto", cmap="RdBu_r", vmin=-limit,
                      vmax=limit, interpolation="nearest")
  axis.set_yticks(range(len(row_labels)), row_labels, fontsize=6)
  axis.set_xticks(range(len(column_labels)), column_labels, fontsize=6, rotation=90)
  bar = figure.colorbar(shown, ax=axis, fraction=0.03)
  if colorbar_label:
    bar.set_label(colorbar_label, fontsize=7)
  if title:
    axis.set_title(title, fontsize=9)
  return _save(figure, path)


def curves(x: np.ndarray, lines: dict[str, np.ndarray], path: str, x_label: str, y_label: str,
           title: str = "") -> str:
  """Draws one marked line per entry of `lines` over the shared x values."""
  figure, axis = plt.subplots(figsize=(5.0, 3.6))
  for label, y in lines.items():
    axis.plot(x, y, marker="o", markersize=3, label=label)
  axis.set_xlabel(x_label)
  axis.set_ylabel(y_label)
  axis.set_ylim(bottom=0.0)
  axis.grid(alpha=0.3)
  axis.legend(fontsize=8)
  if title:
    axis.set_title(title, fontsize=9)
  return _save(figure, path)


def scatter_pairs(panels: Sequence[tuple[str, str, np.ndarray, np.ndarray]], path: str,
                  title: str = "") -> str:
  """One panel per (name_a, name_b, points [n, 2], is_b bool [n]): a as dots, b as crosses."""
  columns = min(len(panels), 3)
  rows = -(-len(panels) // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.3 * rows), squeeze=False)
  for axis in axes.flat[len(panels):]:
    axis.set_visible(False)
  for axis, (name_a, name_b, points, is_b) in zip(axes.flat, panels):
    points, is_b = np.asarray(points), np.asarray(is_b, bool)
    axis.scatter(points[~is_b, 0], points[~is_b, 1], s=8, marker="o", label=name_a, alpha=0.7)
    axis.scatter(points[is_b, 0], points[is_b, 1], s=14, marker="x", label=name_b, alpha=0.7)
    axis.set_title(f"{name_a} vs {name_b}", fontsize=9)
    axis.set_xlabel("PC 1", fontsize=7)
    axis.set_ylabel("PC 2", fontsize=7)
    axis.tick_params(labelsize=6)
    axis.legend(fontsize=7)
  if title:
    figure.suptitle(title, fontsize=10)
  return _save(figure, path)


def _read_metrics(metrics_path: str) -> tuple[dict, dict]:
  """({name: [(step, value)]} of training, of validation) from a run's metrics.jsonl."""
  train, validation = {}, {}
  with open(metrics_path, encoding="utf-8") as f:
    for line in f:
      row = json.loads(line)
      for name, value in row.items():
        for prefix, table in (("train/", train), ("validation/", validation)):
          if name.startswith(prefix):
            table.setdefault(name[len(prefix):], []).append((row["step"], value))
  return train, validation


def _draw(axis, table: dict, name: str, label: str, max_step: int | None = None, **style):
  if name in table:
    points = sorted(dict(table[name]).items())  # A resumed run logs a step twice: keep the last.
    points = [(s, v) for s, v in points if max_step is None or s <= max_step]
    if points:
      steps, values = zip(*points)
      axis.plot(steps, values, label=label, **style)


def compare_runs(runs: dict[str, str], path: str, max_step: int | None = None,
                 title: str = "") -> str:
  """Several runs' training curves side by side ({label: metrics.jsonl}): reconstruction loss,
  accuracy, critic loss and gradient penalty against steps."""
  figure, axes = plt.subplots(2, 2, figsize=(10.0, 7.0), layout="constrained")
  panels = (("loss/reconstruction", "training reconstruction loss"),
            ("accuracy", "training accuracy (mean of tracks)"),
            ("loss/critic", "critic loss"), ("loss/gradient_penalty", "gradient penalty"))
  for index, (label, metrics_path) in enumerate(runs.items()):
    train, _ = _read_metrics(metrics_path)
    train["accuracy"] = _track_mean(train, "accuracy")
    for axis, (name, _) in zip(axes.flat, panels):
      _draw(axis, train, name, label, max_step, color=f"C{index}")
  for axis, (_, panel_title) in zip(axes.flat, panels):
    axis.set_title(panel_title, fontsize=9)
  return _save_step_panels(figure, axes, path, title)


def compare_validation(runs: dict[str, str], path: str, max_step: int | None = None,
                       title: str = "") -> str:
  """Several runs' in-training validation side by side ({label: metrics.jsonl}): mean accuracy,
  mean note accuracy, reconstruction loss, and the training accuracy, against steps."""
  figure, axes = plt.subplots(2, 2, figsize=(10.0, 7.0), layout="constrained")
  panels = ((True, "accuracy", "validation accuracy (mean of tracks)"),
            (True, "note_accuracy", "validation note accuracy (mean of tracks)"),
            (True, "loss/reconstruction", "validation reconstruction loss"),
            (False, "accuracy", "training accuracy (mean of tracks)"))
  for index, (label, metrics_path) in enumerate(runs.items()):
    train, validation = _read_metrics(metrics_path)
    for axis, (is_validation, name, _) in zip(axes.flat, panels):
      table = validation if is_validation else train
      if name in ("accuracy", "note_accuracy"):
        table = {name: _track_mean(table, name)}
      _draw(axis, table, name, label, max_step, color=f"C{index}",
            marker="o" if is_validation else None, markersize=3)
  for axis, (_, _, panel_title) in zip(axes.flat, panels):
    axis.set_title(panel_title, fontsize=9)
  return _save_step_panels(figure, axes, path, title)


def learning_curves(metrics_path: str, path: str, title: str = "") -> str:
  """Four panels from a run's metrics.jsonl: accuracy (training and validation), validation
  note accuracy per track, reconstruction loss, and the critic (its loss, the gradient penalty
  and beta) against steps."""
  train, validation = _read_metrics(metrics_path)
  figure, axes = plt.subplots(2, 2, figsize=(10.0, 7.0), layout="constrained")
  accuracy, notes, loss, critic = axes.flat
  _draw(accuracy, {"mean": _track_mean(train, "accuracy")}, "mean", "training (mean of tracks)")
  _draw(accuracy, validation, "accuracy/mean", "validation (mean of tracks)", marker="o")
  accuracy.set_title("accuracy (MusAE's: every step)", fontsize=9)
  for track in TRACKS:
    _draw(notes, validation, f"note_accuracy/{track}", track, marker="o")
  notes.set_title("validation note accuracy (onset steps)", fontsize=9)
  _draw(loss, train, "loss/reconstruction", "training")
  _draw(loss, validation, "loss/reconstruction", "validation", marker="o")
  loss.set_title("reconstruction loss (sum over tracks)", fontsize=9)
  _draw(critic, train, "loss/critic", "critic loss (left)", color="C0")
  small = critic.twinx()  # The penalty and beta live near [0, 1], the loss far from it.
  _draw(small, train, "loss/gradient_penalty", "gradient penalty (right)", color="C1")
  _draw(small, train, "beta", "beta (right)", color="C2")
  small.tick_params(labelsize=7)
  small.legend(fontsize=7, loc="lower right")
  critic.set_title("critic", fontsize=9)
  return _save_step_panels(figure, axes, path, title)


def _save_step_panels(figure, axes, path: str, title: str) -> str:
  """Labels, grids and legends of panels drawn against steps; saves the figure."""
  for axis in axes.flat:
    axis.set_xlabel("step", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.grid(alpha=0.3)
    if axis.lines:
      axis.legend(fontsize=7)
  if title:
    figure.suptitle(title, fontsize=10)
  return _save(figure, path)


def _track_mean(table: dict, family: str) -> list[tuple[int, float]]:
  """[(step, mean over the tracks of family/<track>)] for the steps that have all tracks."""
  per_track = [dict(table.get(f"{family}/{track}", [])) for track in TRACKS]
  steps = sorted(set.intersection(*(set(t) for t in per_track)))
  return [(step, float(np.mean([t[step] for t in per_track]))) for step in steps]
