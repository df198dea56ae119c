r"""Several runs' in-training validation curves on one figure (RESULTS.md's 2-bar ablation):

  python scripts/validation_curves.py --out=docs/results/beta_2bar.png \
      --run="beta 1 (corpus_2bar)=runs/corpus_2bar" --run="beta 0.3=runs/corpus_2bar_low_beta" \
      [--max_step=30000] [--title=...]

Each --run is LABEL=WORKDIR (its metrics.jsonl is read): validation mean accuracy, mean note
accuracy and reconstruction loss, and the training accuracy, against steps.
"""

import os

from absl import app
from absl import flags

from musae_common import cli
from musae_common.errors import UserError
from musae_jax.tools import plots

_RUNS = flags.DEFINE_multi_string("run", [], "LABEL=WORKDIR; repeat for each run.")
_OUT = flags.DEFINE_string("out", None, "The PNG to write.", required=True)
_MAX_STEP = flags.DEFINE_integer("max_step", 0, "Last step shown (0 = all).")
_TITLE = flags.DEFINE_string("title", "", "Figure title.")


def _draw() -> None:
  runs = {}
  for item in _RUNS.value:
    label, _, workdir = item.rpartition("=")
    metrics = os.path.join(workdir, "metrics.jsonl")
    if not label or not os.path.exists(metrics):
      raise UserError(f"--run={item!r}: expected LABEL=WORKDIR with a metrics.jsonl in WORKDIR.")
    runs[label] = metrics
  print(plots.compare_validation(runs, _OUT.value, _MAX_STEP.value or None, _TITLE.value))


def main(argv):
  cli.run_tool(argv, _draw)


if __name__ == "__main__":
  app.run(main)
