"""The paper's 16-bar MusAE with a Gaussian prior (3-layer stacks, WGAN-GP, beta annealed from 0
to 1) at a width and batch that train on a 2-core CPU in about 3 hours.

Command (the development corpus; any MIDI folder works, a `manifest.csv` with an `artist`
column beside it gives an artist-disjoint validation split):
  python -m musae_jax.main --config=configs/corpus_16bar.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
or the whole suite: `python -m musae_jax.tools.reproduce --suite=cpu --midi_dir=... --out=...`.

It differs from configs/corpus_16bar_gm.py only in the prior, so the two test the paper's claim
(the genre mixture prior reconstructs 16-bar windows better) at equal cost. Differences from the
paper's configs/16bar.py are those of configs/corpus_2bar.py (N_h 192, N_z 128, lr 1e-3 with
clipping, residual connections, initial posterior sigma 0.01, compressed beta ramp), batch 16.
Result (RESULTS.md, AMD EPYC 2 cores, trained beside corpus_16bar_gm on one core each: 10,000
steps in 6.0 hours at 0.58 steps/s): on all 29,718 validation windows (345 songs by unseen
artists), MusAE accuracy 0.612 mean (drums 0.613, bass 0.554, guitar 0.592, strings 0.688), note
accuracy drums 0.372, pitched 0.035, onset F1 0.146 (majority baseline 0.523 mean accuracy); the
flower config is ahead at equal cost (0.634).
"""

from configs import corpus_2bar


def get_config():
  config = corpus_2bar.get_config()
  config.name = "corpus_16bar"
  config.data.bars = 16
  config.batch_size = 16
  config.num_train_steps = 10_000  # ~1.1 s per step on 2 cores: about 3 hours.
  config.eval_every_steps = 1_000
  config.num_eval_batches = 25
  config.checkpoint_every_steps = 500
  config.optim.beta_every_steps = 80  # +0.01 each: beta reaches 1 at step 8,000, as 2-bar's at 20k.
  return config
