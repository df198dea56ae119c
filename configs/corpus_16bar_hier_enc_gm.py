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
Result (RESULTS.md, "16 bars with a hierarchical decoder"): step 4,500 (the same step cost as
corpus_16bar_hier_gm; 45 minutes on a 2-core Intel Xeon, float32), on 6,000 seeded validation
windows of unseen artists (`python -m musae_jax.tools.evaluate --workdir=RUN --split=validation
--max_windows=6000 --out=DIR`): accuracy drums 0.727, bass 0.619, guitar 0.625, strings 0.695
(mean 0.667; corpus_16bar_hier_gm 0.657), note accuracy drums 0.584, pitched 0.102 (0.093),
onset F1 0.255, interpolation monotone, genre probe 0.585. Every bar is now decoded about as
well as bar 1, but the pitched tracks stay near 0.1 in all of them.
"""

from configs import corpus_16bar_hier_gm


def get_config():
  config = corpus_16bar_hier_gm.get_config()
  config.name = "corpus_16bar_hier_enc_gm"
  config.model.encoder = "hierarchical"  # Bars read on their own, then their summaries.
  return config
