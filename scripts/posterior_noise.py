r"""How much of a trained run's code is signal and how much is the posterior's noise: the spread
of the posterior means across windows against the posterior's own sigma, and the reconstruction
accuracy from the mean against that from one sampled code (RESULTS.md, "How noisy the codes are").

  python scripts/posterior_noise.py --workdir=repro/runs/corpus_2bar --data_dir=repro/tfds \
      [--split=validation] [--max_windows=1024] [--step=N]

A sigma far below the means' spread says the code carries all it can (the prior's regulariser
does not blur it); a sigma near the spread says the decoder sees mostly noise in training.
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
_MAX_WINDOWS = flags.DEFINE_integer("max_windows", 1024, "Windows (seeded subset; 0 = all).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_SEED = flags.DEFINE_integer("seed", 0, "Seeds the sampled codes.")


def main(argv):
  del argv
  run = runs.load_run(_WORKDIR.value, _STEP.value)
  windows = input_windows.split_windows(_DATA_DIR.value, run.bars, _SPLIT.value,
                                        _MAX_WINDOWS.value)
  mean = run.encode(windows.tokens)
  sigma = run.posterior_std(windows.tokens)
  spread = mean.std(axis=0)  # Per latent dimension, across windows.
  ratio = spread / sigma.mean(axis=0)
  print(f"{run.workdir} step {run.step}, {len(mean)} {_SPLIT.value} windows, N_z {run.latent_size}")
  print(f"posterior means: spread across windows {spread.mean():.3f} (mean over dimensions), "
        f"rms {np.sqrt((mean ** 2).mean()):.3f}")
  print(f"posterior sigma: mean {sigma.mean():.4f}, median {np.median(sigma):.4f}, "
        f"range {sigma.min():.4f}-{sigma.max():.4f}")
  print("spread / sigma per dimension, quantiles 0/25/50/75/100%: "
        + " ".join(f"{q:.1f}" for q in np.quantile(ratio, [0, .25, .5, .75, 1])))
  sampled = mean + sigma * np.random.default_rng(_SEED.value).standard_normal(mean.shape)
  target = windows.tokens
  for name, codes in (("mean code", mean), ("sampled code", sampled)):
    accuracy = (run.decode(codes) == target).mean(axis=(0, 1))
    print(f"accuracy from the {name}: " + ", ".join(
        f"{track} {a:.3f}" for track, a in zip(tokens_lib.TRACKS, accuracy))
          + f"; mean {accuracy.mean():.3f}")


if __name__ == "__main__":
  app.run(main)
