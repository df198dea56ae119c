"""The paper's 16-bar MusAE with a Gaussian prior (Table 1, column "MusAE (gaussian)").

Command:
  python -m musae_jax.main --config=configs/16bar.py \
      --config.data.midi_dir=/path/to/lmd_matched --config.data.genres_file=/path/to/genres.json
Expected (paper, Lakh MIDI, LMD-matched): validation accuracy drums 0.773, bass 0.763,
guitar/piano 0.710, strings 0.802 (MusAE's accuracy, hold/silent tokens included).
With default.make_deep_stacks_learn (residual stacks, initial posterior sigma 0.01, beta +0.01
every 1,000 updates); measured at CPU scale (configs/corpus_*.py, RESULTS.md), not yet at this size.
"""

from configs import default


def get_config():
  config = default.make_deep_stacks_learn(default.get_config())
  config.name = "16bar"
  config.data.bars = 16
  return config
