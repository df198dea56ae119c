"""Draws RESULTS.md's pictures from a reproduction suite's output folder and the ablation run.

  python -m musae_jax.tools.reproduce --suite=cpu --midi_dir=... --genres=... --out=repro
  python -m musae_jax.main --config=configs/corpus_2bar.py --workdir=repro/ablation/paper_settings \
      --config.data.data_dir=repro/tfds --config.num_train_steps=1500 \
      --config.eval_every_steps=500 --config.checkpoint_every_steps=500 \
      --config.model.residual=False --config.model.initial_posterior_std=1.0 \
      --config.optim.beta_increment=0.1 --config.optim.beta_every_steps=1000
  python docs/make_results_figures.py --out=repro --images=docs/results

Copies each run's learning curves, interpolation curve and genre PCA, and draws the ablation:
corpus_2bar's first steps beside the same config with the paper's settings (no residual
connections, posterior sigma 1 at initialisation, beta +0.1 every 1,000 updates), the two
16-bar runs, which differ only in the prior, on one set of axes, and corpus_2bar beside
corpus_2bar_wide (N_h 384) when both are in OUT/runs:
  python -m musae_jax.main --config=configs/corpus_2bar_wide.py --workdir=repro/runs/corpus_2bar_wide \
      --config.data.data_dir=repro/tfds
"""

import os
import shutil
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from musae_jax.tools import plots

_OUT = flags.DEFINE_string("out", "repro", "The reproduction suite's --out folder.")
_ABLATION = flags.DEFINE_string("ablation", "", "The paper-settings run (default OUT/ablation/"
                                "paper_settings).")
_IMAGES = flags.DEFINE_string("images", "docs/results", "Where the PNGs go.")
_ABLATION_STEPS = flags.DEFINE_integer("ablation_steps", 1500, "Steps shown in the ablation.")
_PRIOR_STEPS = flags.DEFINE_integer("prior_steps", 0, "Steps shown in the 16-bar prior "
                                    "comparison (0 = all; give the step both runs reached).")
_WIDTH_STEPS = flags.DEFINE_integer("width_steps", 4100, "Steps shown in the 2-bar width "
                                    "comparison (corpus_2bar_wide was stopped at 4,100).")


def main(argv):
  del argv
  out, images = _OUT.value, _IMAGES.value
  os.makedirs(images, exist_ok=True)
  for name in sorted(os.listdir(os.path.join(out, "runs"))):
    copies = {os.path.join(out, "curves", f"{name}.png"): f"{name}_curves.png",
              os.path.join(out, "eval", name, "interpolation_hamming.png"):
                  f"{name}_interpolation.png",
              os.path.join(out, "eval", name, "genre_pca.png"): f"{name}_genre_pca.png"}
    for source, target in copies.items():
      if os.path.exists(source):
        shutil.copyfile(source, os.path.join(images, target))
        print(os.path.join(images, target))
  ablation = _ABLATION.value or os.path.join(out, "ablation", "paper_settings")
  fixed = os.path.join(out, "runs", "corpus_2bar", "metrics.jsonl")
  if os.path.exists(os.path.join(ablation, "metrics.jsonl")) and os.path.exists(fixed):
    print(plots.compare_runs(
        {"paper's settings: plain stacks, sigma 1, beta +0.1 / 1,000":
             os.path.join(ablation, "metrics.jsonl"),
         "corpus_2bar: residual, sigma 0.01, beta +0.01 / 200": fixed},
        os.path.join(images, "ablation_2bar.png"), max_step=_ABLATION_STEPS.value,
        title="3-layer stacks, N_h 192, batch 32, lr 1e-3, development corpus"))

  pair = {"corpus_16bar: Gaussian prior": os.path.join(out, "runs", "corpus_16bar"),
          "corpus_16bar_gm: flower prior": os.path.join(out, "runs", "corpus_16bar_gm")}
  if all(os.path.exists(os.path.join(d, "metrics.jsonl")) for d in pair.values()):
    print(plots.compare_runs(
        {label: os.path.join(d, "metrics.jsonl") for label, d in pair.items()},
        os.path.join(images, "prior_16bar.png"), max_step=_PRIOR_STEPS.value or None,
        title="16 bars, 3-layer stacks, N_h 192, batch 16: the prior alone differs"))

  widths = {"corpus_2bar: N_h 192, 20,000-step schedules": os.path.join(out, "runs", "corpus_2bar"),
            "corpus_2bar_wide: N_h 384, 8,000-step schedules":
                os.path.join(out, "runs", "corpus_2bar_wide")}
  if all(os.path.exists(os.path.join(d, "metrics.jsonl")) for d in widths.values()):
    print(plots.compare_runs(
        {label: os.path.join(d, "metrics.jsonl") for label, d in widths.items()},
        os.path.join(images, "width_2bar.png"), max_step=_WIDTH_STEPS.value,
        title="2 bars, 3-layer stacks, batch 32: the width differs (per step)"))


if __name__ == "__main__":
  app.run(main)
