"""configs/corpus_16bar_gm.py with MusicVAE's hierarchical decoder: a conductor LSTM reads z and
emits one embedding per bar, and each track decoder decodes every bar from z and that bar's
embedding, the 16 bars as one batch. An extension beyond the paper (MusAE's prior with
MusicVAE's decoder); everything else is corpus_16bar_gm's.

Command:
  python -m musae_jax.main --config=configs/corpus_16bar_hier_gm.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result: RESULTS.md, "16 bars with a hierarchical decoder".
"""

from configs import corpus_16bar_gm


def get_config():
  config = corpus_16bar_gm.get_config()
  config.name = "corpus_16bar_hier_gm"
  config.model.decoder = "hierarchical"
  config.model.conductor_hidden_size = 512  # Bar embedding size (MusicVAE: 1024 at N_z 512).
  config.model.conductor_layers = 2  # MusicVAE's conductor depth.
  return config
