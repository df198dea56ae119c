"""configs/corpus_16bar_direct_gm.py with the Gaussian prior: the paper's prior comparison at 16
bars, with direct per-bar paths into and out of the code.

Command:
  python -m musae_jax.main --config=configs/corpus_16bar_direct.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result: see RESULTS.md, "Direct per-bar paths".
"""

from configs import corpus_16bar_direct_gm


def get_config():
  config = corpus_16bar_direct_gm.get_config()
  config.name = "corpus_16bar_direct"
  config.model.prior = "gaussian"
  return config
