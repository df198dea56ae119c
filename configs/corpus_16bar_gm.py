"""configs/corpus_16bar.py with the paper's genre "flower" Gaussian-mixture prior (one component
per genre tag of the corpus, plus one for unlabeled songs); nothing else differs.

Command:
  python -m musae_jax.main --config=configs/corpus_16bar_gm.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result (RESULTS.md, AMD EPYC 2 cores, trained beside corpus_16bar on one core each: 10,000
steps in 6.0 hours at 0.58 steps/s): on all 29,718 validation windows (345 songs by unseen
artists), MusAE accuracy 0.634 mean (drums 0.630, bass 0.597, guitar 0.612, strings 0.695), note
accuracy drums 0.409, pitched 0.101, onset F1 0.223, against 0.612 / 0.372 / 0.035 / 0.146 for the
Gaussian config (majority baseline 0.523 mean accuracy).
"""

from configs import corpus_16bar


def get_config():
  config = corpus_16bar.get_config()
  config.name = "corpus_16bar_gm"
  config.model.prior = "flower"
  return config
