r"""Where a trained run's reconstruction errors are: per track, the share of target steps that
start a note (a pitch), continue one (hold) or are silent, the accuracy on each kind and the share
of the track's errors each kind makes (RESULTS.md, 2-bar section, "What the errors are"); and for
the drums, which drum is predicted at the onsets it gets wrong: the share of those errors that stay
within the target's kit group (kick 35/36, snare 37-40, hi-hat 42/44/46, toms, crash, ride) and
the most frequent target -> predicted pairs.

  python scripts/token_errors.py --workdir=repro/runs/corpus_2bar --data_dir=repro/tfds \
      [--split=validation] [--max_windows=3000]

Codes are posterior means, as in the evaluation; windows are a seeded random subset of the split.
"""

import collections

from absl import app
from absl import flags
import numpy as np
import pretty_midi

from data_pipeline import tokens as tokens_lib
from musae_jax.tools import input_windows
from musae_jax.tools import runs

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The run's built dataset.", required=True)
_SPLIT = flags.DEFINE_string("split", "validation", "Dataset split.")
_MAX_WINDOWS = flags.DEFINE_integer("max_windows", 3000, "Windows (seeded subset; 0 = all).")


# General MIDI drum notes that play the same part of a kit: an arranger picks one or the other.
KIT_GROUPS = {"kick": (35, 36), "snare": (37, 38, 39, 40), "hi-hat": (42, 44, 46),
              "tom": (41, 43, 45, 47, 48, 50), "crash": (49, 52, 55, 57), "ride": (51, 53, 59)}
_GROUP_OF = {pitch: group for group, pitches in KIT_GROUPS.items() for pitch in pitches}


def wrong_drum_confusions(target: np.ndarray, predicted: np.ndarray, top: int = 8) -> dict:
  """target, predicted: the drums' tokens (any shape). Among the drum onsets predicted as another
  onset: the share whose predicted drum is in the target's KIT_GROUPS group, and the `top` most
  frequent (target, predicted, count) pairs."""
  target, predicted = np.ravel(target), np.ravel(predicted)
  onset = target < tokens_lib.NUM_PITCHES
  wrong_drum = onset & (predicted < tokens_lib.NUM_PITCHES) & (predicted != target)
  pairs = collections.Counter(zip(target[wrong_drum].tolist(), predicted[wrong_drum].tolist()))
  same_group = sum(count for (t, p), count in pairs.items()
                   if t in _GROUP_OF and _GROUP_OF[t] == _GROUP_OF.get(p))
  return {"wrong_drum_share_of_onset_errors":
              wrong_drum.sum() / max(1, (onset & (predicted != target)).sum()),
          "same_group_share": same_group / max(1, wrong_drum.sum()),
          "top_pairs": [(t, p, n) for (t, p), n in pairs.most_common(top)]}


def _drum_name(pitch: int) -> str:
  return f"{pretty_midi.note_number_to_drum_name(pitch) or 'drum'} ({pitch})"


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
  drums = wrong_drum_confusions(target[..., 0], predicted[..., 0])
  print(f"drum onsets predicted as another drum: {drums['wrong_drum_share_of_onset_errors']:.2f} "
        f"of the drums' onset errors, {drums['same_group_share']:.2f} of them within the kit "
        "group; most frequent (target -> predicted, count):")
  for t, p, count in drums["top_pairs"]:
    print(f"  {_drum_name(t)} -> {_drum_name(p)}: {count}")


if __name__ == "__main__":
  app.run(main)
