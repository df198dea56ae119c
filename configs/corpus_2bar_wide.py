"""configs/corpus_2bar.py at twice the width (N_h 384), with the same schedules compressed to the
steps that fit the same 2-core budget: does the 2-bar model's fit, not its step count, limit it?

corpus_2bar (N_h 192) flattens at validation accuracy 0.80 while it scores only 0.84 on its own
training windows (RESULTS.md): it underfits. This config doubles the LSTM width (and the critic's,
which the paper keeps equal to N_h); a step costs 3.1x as much on a 2-core CPU, so it trains 8,000
steps instead of 20,000, with beta's 0 -> 1 ramp and the learning rate's decay compressed to them
(the same start and end values as corpus_2bar).

Command:
  python -m musae_jax.main --config=configs/corpus_2bar_wide.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result (RESULTS.md, "A wider 2-bar model does not get there either"): stopped at step 4,100 after
56 minutes on a 2-core AMD EPYC (1.25 steps/s), behind corpus_2bar at every step after the first
500 and far behind per hour: validation accuracy 0.708 / 0.741 at steps 2,000 / 4,000 against
corpus_2bar's 0.726 / 0.759 (reached in 8 and 16 minutes), with a wider gap between validation and
training loss (0.44 against 0.29 at step 4,000). Not part of the reproduction suite.
"""

from configs import corpus_2bar


def get_config():
  config = corpus_2bar.get_config()
  config.name = "corpus_2bar_wide"
  config.num_train_steps = 8_000  # 1.25 steps per second measured on 2 cores: about 1.8 hours.
  config.model.hidden_size = 384
  config.model.critic_hidden_size = 384
  config.optim.beta_every_steps = 80  # +0.01 each: beta reaches 1 at step 8,000.
  # lr / (1 + d t): 1e-3 at step 0 and 3.3e-4 at the last step, as in corpus_2bar over 20,000.
  config.optim.lr_decay = 2.5e-4
  return config
