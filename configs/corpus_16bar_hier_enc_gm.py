"""configs/corpus_16bar_hier_gm.py with the hierarchical encoder too: the encoder's stacked biLSTM
reads each bar on its own (the 16 bars as one batch) and one more biLSTM layer reads the 16 bars'
summaries, so every bar reaches z through 16 + 16 recurrent steps. An extension beyond the paper
and beyond MusicVAE (whose encoder is flat); everything else is corpus_16bar_hier_gm's.

It tests the limit corpus_16bar_hier_gm shows (RESULTS.md, "16 bars with a hierarchical
decoder"): with the conductor, drums are decoded equally well in all 16 bars, but the pitched
tracks are decoded well only in bar 1, which the flat encoder's backward state ends on.

Command:
  python -m musae_jax.main --config=configs/corpus_16bar_hier_enc_gm.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result: see RESULTS.md, "16 bars with a hierarchical decoder".
"""

from configs import corpus_16bar_hier_gm


def get_config():
  config = corpus_16bar_hier_gm.get_config()
  config.name = "corpus_16bar_hier_enc_gm"
  config.model.encoder = "hierarchical"  # Bars read on their own, then their summaries.
  return config
