"""Default MusAE hyperparameters: the paper's 16-bar model with a Gaussian prior, on the demo data.

Every other config imports this one and overrides a few fields; every field and its meaning is
in musae_jax/default_config.py.
"""

import pathlib

import ml_collections

from musae_jax import default_config

# The small permissively licensed demo corpus that ships with the repository.
DEMO_DIR = pathlib.Path(__file__).resolve().parent.parent / "demo_data"
# The development corpus beside a checkout (configs/corpus_*.py); users point midi_dir elsewhere.
SHARED_CORPUS = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SHARED_CORPUS_MIDI = str(SHARED_CORPUS / "midi")
SHARED_CORPUS_GENRES = str(SHARED_CORPUS / "genres.json")


def get_config() -> ml_collections.ConfigDict:
  """The package's defaults (musae_jax/default_config.py: every field with its meaning), trained
  on the demo corpus that ships with the repository."""
  config = default_config.get_config()
  config.data.midi_dir = str(DEMO_DIR / "midi")
  config.data.genres_file = str(DEMO_DIR / "genres.json")
  return config


def make_deep_stacks_learn(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """What makes the paper's 3-layer stacks learn on real data (RESULTS.md, measured on the
  development corpus): residual connections between stacked LSTM layers, a posterior sigma of
  0.01 at initialisation, and beta raised in tenths of the paper's steps (the same 0 -> 1 ramp,
  so the codes never drift far from the prior while beta is 0)."""
  config.model.residual = True
  config.model.initial_posterior_std = 0.01
  config.optim.beta_increment /= 10
  config.optim.beta_every_steps //= 10
  return config
