"""configs/corpus_16bar_direct_gm.py with the Gaussian prior: the paper's prior comparison at 16
bars, with direct per-bar paths into and out of the code.

Command:
  python -m musae_jax.main --config=configs/corpus_16bar_direct.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result (RESULTS.md, "16 bars with direct per-bar paths"): step 4,500 (56 minutes on one core of a
2-core Intel Xeon, bf16 on AMX tiles), on all 29,718 validation windows of 345 songs by unseen
artists (`python -m musae_jax.tools.evaluate --workdir=RUN --split=validation --out=DIR`):
accuracy drums 0.742, bass 0.660, guitar 0.661, strings 0.715 (mean 0.695), note accuracy drums
0.615, pitched 0.211 (bass 0.288, guitar 0.251, strings 0.093), onset F1 0.357, interpolation
monotone, genre probe 0.587: behind the flower prior's run on every track.
"""

from configs import corpus_16bar_direct_gm


def get_config():
  config = corpus_16bar_direct_gm.get_config()
  config.name = "corpus_16bar_direct"
  config.model.prior = "gaussian"
  return config
