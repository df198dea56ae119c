r"""Where a trained run's reconstruction errors are: per track, the share of target steps that
start a note (a pitch), continue one (hold) or are silent, the accuracy on each kind and the share
of the track's errors each kind makes (RESULTS.md, 2-bar section, "What the errors are").

  python scripts/token_errors.py --workdir=repro/runs/corpus_2bar --data_dir=repro/tfds \
      [--split=validation] [--max_windows=3000]

Codes are posterior means, as in the evaluation; windows are a seeded random subset of the split.
"""

from absl import app
from absl import flags
import numpy as np

from data_pipeline import tokens as tokens_lib
from musae_jax.tools import input_windows
from musae_jax.tools import runs

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The run's built dataset.", required=True)
_SPLIT = flags.DEFINE_string("split", "validation", "Dataset split.")
_MAX_WINDOWS = flags.DEFINE_integer("max_windows", 3000, "Windows (seeded subset; 0 = all).")


def main(argv):
  del argv
  run = runs.load_run(_WORKDIR.value)
  target, predicted = input_windows.split_reconstruction(run, _DATA_DIR.value, _SPLIT.value,
                                                         _MAX_WINDOWS.value)
  print(f"{run.workdir} step {run.step}, {len(target)} {_SPLIT.value} windows")
  print("track     accuracy | kind: share of steps, accuracy, share of the track's errors")
  for k, track in enumerate(tokens_lib.TRACKS):
    t, p = target[..., k], predicted[..., k]
    wrong = t != p
    kinds = {"pitch": t < tokens_lib.NUM_PITCHES, "hold": t == tokens_lib.HOLD,
             "silent": t == tokens_lib.SILENT}
    cells = [f"{name} {mask.mean():.3f} {(~wrong[mask]).mean():.3f} "
             f"{(wrong & mask).sum() / max(1, wrong.sum()):.2f}" for name, mask in kinds.items()]
    print(f"{track:8s}  {(~wrong).mean():.3f}    | " + " | ".join(cells))


if __name__ == "__main__":
  app.run(main)
