"""configs/corpus_16bar.py with the paper's genre "flower" Gaussian-mixture prior (one component
per genre tag of the corpus, plus one for unlabeled songs); nothing else differs.

Command:
  python -m musae_jax.main --config=configs/corpus_16bar_gm.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Hardware, wall time and result: RESULTS.md.
"""

from configs import corpus_16bar


def get_config():
  config = corpus_16bar.get_config()
  config.name = "corpus_16bar_gm"
  config.model.prior = "flower"
  return config
