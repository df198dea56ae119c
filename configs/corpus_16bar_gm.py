"""configs/corpus_16bar.py with the paper's genre "flower" Gaussian-mixture prior (one component
per genre tag of the corpus, plus one for unlabeled songs); nothing else differs.

Command:
  python -m musae_jax.main --config=configs/corpus_16bar_gm.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result so far (RESULTS.md, AMD EPYC 2 cores, trained beside corpus_16bar on one core each,
1.3-1.7 s a step): at step 5,000 of 10,000, on all 29,718 validation windows (345 songs by unseen
artists), MusAE accuracy 0.626 mean (drums 0.627, bass 0.579, guitar 0.606, strings 0.694), note
accuracy drums 0.433, pitched 0.063 (step 2,500: 0.617, 0.395, 0.047), against 0.603 / 0.369 /
0.028 for the Gaussian config.
"""

from configs import corpus_16bar


def get_config():
  config = corpus_16bar.get_config()
  config.name = "corpus_16bar_gm"
  config.model.prior = "flower"
  return config
