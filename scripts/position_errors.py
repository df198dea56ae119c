r"""Where within a window a trained run loses the music: accuracy and note accuracy per track by
bar (1 ... bars) and by 16th position within the bar, on a split of its dataset.

  python scripts/position_errors.py --workdir=repro/runs/corpus_16bar_gm --data_dir=repro/tfds \
      [--split=validation] [--max_windows=2000] [--out=DIR]

Prints a table per track and a verdict of the shape, from note accuracy (onset steps only, so
that the share of onsets, higher on beats, does not decide it): whether only the first bar is
decoded (bar 1 well above the rest, which stay level), errors grow along the window (its slope
per bar, first bar against last), sit at bar starts (position 1 against the other 15) or are
spread evenly. With --out also writes position_errors.json and three figures
(accuracy by bar, note accuracy by bar, accuracy by position in the bar). Codes are posterior
means, as in the evaluation; windows are a seeded random subset of the split. Note accuracy
counts the steps whose target starts a note (as in the evaluation).
"""

import json
import os

from absl import app
from absl import flags
import numpy as np

from data_pipeline import tokens as tokens_lib
from musae_jax.tools import input_windows
from musae_jax.tools import plots
from musae_jax.tools import runs

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defined when run as a script only: position_table is imported by the tests."""
  flags.DEFINE_string("workdir", None, "The training run.", required=True)
  flags.DEFINE_string("data_dir", None, "The run's built dataset.", required=True)
  flags.DEFINE_string("split", "validation", "Dataset split.")
  flags.DEFINE_integer("max_windows", 2000, "Windows (seeded subset; 0 = all).")
  flags.DEFINE_string("out", None, "Folder for position_errors.json and the figures.")


def position_table(target: np.ndarray, predicted: np.ndarray) -> dict:
  """Per track: accuracy and note accuracy [bars] by bar and [16] by position in the bar, the
  share of onsets by bar, the per-bar slope of accuracy and the bar-start gap."""
  num_steps = target.shape[1]
  bars = num_steps // tokens_lib.STEPS_PER_BAR
  shape = (target.shape[0], bars, tokens_lib.STEPS_PER_BAR)
  table = {}
  for k, track in enumerate(tokens_lib.TRACKS):
    t, p = target[..., k].reshape(shape), predicted[..., k].reshape(shape)
    right, onset = t == p, t < tokens_lib.NUM_PITCHES

    def note(axis):
      return np.where(onset.sum(axis) > 0,
                      (right & onset).sum(axis) / np.maximum(onset.sum(axis), 1), np.nan)

    by_bar, note_by_bar = right.mean(axis=(0, 2)), note((0, 2))
    note_by_position = note((0, 1))
    # The verdicts compare note accuracy (onset steps only): plain accuracy also moves with the
    # share of onsets, which is higher on beats and bar starts in any music.
    table[track] = {
        "accuracy_by_bar": by_bar.tolist(), "note_accuracy_by_bar": note_by_bar.tolist(),
        "accuracy_by_position": right.mean(axis=(0, 1)).tolist(),
        "note_accuracy_by_position": note_by_position.tolist(),
        "onset_share_by_bar": onset.mean(axis=(0, 2)).tolist(),
        "note_slope_per_bar": float(np.polyfit(np.arange(bars), np.nan_to_num(note_by_bar), 1)[0])
                              if bars > 1 else 0.0,
        "note_first_minus_last_bar": float(note_by_bar[0] - note_by_bar[-1]),
        # A decoder that holds only what its initial state gives it decodes bar 1 and then
        # falls to one level: the first bar against the rest, and how far the rest spread.
        "note_first_minus_rest": float(note_by_bar[0] - np.nanmean(note_by_bar[1:]))
                                 if bars > 1 else 0.0,
        "note_spread_after_first_bar": float(np.nanmax(note_by_bar[1:]) -
                                             np.nanmin(note_by_bar[1:])) if bars > 2 else 0.0,
        "note_bar_start_minus_rest": float(note_by_position[0] -
                                           np.nanmean(note_by_position[1:])),
    }
  return table


def _verdict(row: dict) -> str:
  if (row["note_first_minus_rest"] > 0.05 and
      row["note_spread_after_first_bar"] < 0.5 * row["note_first_minus_rest"]):
    return "only the first bar is decoded: errors jump after bar 1, then stay level"
  if row["note_first_minus_last_bar"] > 0.05 and row["note_slope_per_bar"] < 0:
    return "errors grow along the window"
  if row["note_bar_start_minus_rest"] < -0.05:
    return "errors sit at bar starts"
  return "errors spread evenly"


def main(argv):
  del argv
  run = runs.load_run(FLAGS.workdir)
  target, predicted = input_windows.split_reconstruction(run, FLAGS.data_dir, FLAGS.split,
                                                         FLAGS.max_windows)
  table = position_table(target, predicted)
  print(f"{run.workdir} step {run.step}, {len(target)} {FLAGS.split} windows, {run.bars} bars")
  for track, row in table.items():
    print(f"{track}: accuracy by bar " + " ".join(f"{a:.3f}" for a in row["accuracy_by_bar"]))
    print(f"{'':{len(track)}}  note accuracy by bar " +
          " ".join(f"{a:.3f}" for a in row["note_accuracy_by_bar"]))
    print(f"{'':{len(track)}}  accuracy by 16th in the bar " +
          " ".join(f"{a:.2f}" for a in row["accuracy_by_position"]))
    print(f"{'':{len(track)}}  note accuracy: slope per bar {row['note_slope_per_bar']:+.4f}, "
          f"first - last bar {row['note_first_minus_last_bar']:+.3f}, bar start - rest "
          f"{row['note_bar_start_minus_rest']:+.3f}, bar 1 - the rest "
          f"{row['note_first_minus_rest']:+.3f}: {_verdict(row)}")
  if FLAGS.out:
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "position_errors.json"), "w", encoding="utf-8") as f:
      json.dump({"workdir": run.workdir, "step": run.step, "split": FLAGS.split,
                 "windows": len(target), "tracks": table}, f, indent=1)
    for key, x_label in (("accuracy_by_bar", "bar"), ("note_accuracy_by_bar", "bar"),
                         ("accuracy_by_position", "16th within the bar")):
      x = np.arange(1, len(next(iter(table.values()))[key]) + 1)
      print(plots.curves(x, {track: np.asarray(row[key]) for track, row in table.items()},
                         os.path.join(FLAGS.out, f"{key}.png"), x_label,
                         key.replace("_by_", " by ").replace("_", " "),
                         title=f"{os.path.basename(run.workdir)}, step {run.step}, "
                               f"{FLAGS.split}"))


if __name__ == "__main__":
  define_flags()
  app.run(main)
