"""configs/corpus_2bar_low_beta.py with each track decoder also reading the step's position in
its bar (a one-hot of 16 beside z): the issue-29 arm aimed at the drums.

A departure from the paper's architecture (its decoders read z alone). Why: the drums' errors on
unseen artists are mostly kicks and snares put where the target has a closed hi-hat, or the other
way round (RESULTS.md, "Regularisers at equal budget"); a decoder that reads z alone has to count
out where in the bar each step falls through its recurrence.

Command:
  python -m musae_jax.main --config=configs/corpus_2bar_step_position.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result: not measured yet (the run is under way); corpus_2bar_low_beta's numbers are the baseline.
"""

from configs import corpus_2bar_low_beta


def get_config():
  config = corpus_2bar_low_beta.get_config()
  config.name = "corpus_2bar_step_position"
  config.model.step_position = True  # The decoders' first layers read [z, position one-hot].
  return config
