"""The paper's 16-bar MusAE with the genre "flower" Gaussian-mixture prior (Table 1, "gaussian mixture").

Command:
  python -m musae_jax.main --config=configs/16bar_gm.py \
      --config.data.midi_dir=/path/to/lmd_matched --config.data.genres_file=/path/to/genres.json
Expected (paper, Lakh MIDI): validation accuracy drums 0.911, bass 0.880, guitar/piano 0.797,
strings 0.825. Needs genre labels: one prior component per tag of the 32 most frequent tags.
With default.make_deep_stacks_learn (residual stacks, initial posterior sigma 0.01, beta +0.01
every 1,000 updates); measured at CPU scale (configs/corpus_*.py, RESULTS.md), not yet at this size.
"""

from configs import default


def get_config():
  config = default.make_deep_stacks_learn(default.get_config())
  config.name = "16bar_gm"
  config.data.bars = 16
  config.model.prior = "flower"
  return config
