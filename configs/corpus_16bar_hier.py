"""configs/corpus_16bar_hier_gm.py with the Gaussian prior: the pair tests the paper's prior
claim (the genre mixture reconstructs 16-bar windows better) with a decoder that carries
melodies. An extension beyond the paper, as corpus_16bar_hier_gm.

Command:
  python -m musae_jax.main --config=configs/corpus_16bar_hier.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result: not measured yet (RESULTS.md, "16 bars with a hierarchical decoder", reports the flower
config; this one is the pair it is to be compared with at equal steps).
"""

from configs import corpus_16bar_hier_gm


def get_config():
  config = corpus_16bar_hier_gm.get_config()
  config.name = "corpus_16bar_hier"
  config.model.prior = "gaussian"
  return config
