"""configs/corpus_2bar_low_beta.py with each track decoder also reading the step's position in
its bar (a one-hot of 16 beside z): the best 2-bar config on unseen artists.

A departure from the paper's architecture (its decoders read z alone). Why: the drums' errors on
unseen artists are mostly kicks and snares put where the target has a closed hi-hat, or the other
way round (RESULTS.md, "Other factors at equal budget"); a decoder that reads z alone has to
count out where in the bar each step falls through its recurrence.

Command:
  python -m musae_jax.main --config=configs/corpus_2bar_step_position.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result (RESULTS.md): 30,000 steps in 67 minutes on one core of a 2-core Intel Xeon (family 6
model 207, AMX-BF16: bf16 matmuls; another training run on the other core), steps 0-4,000 at
commit 872e7ba on the avx512_bf16 kernel, the rest resumed at 475f526 on the amx_bf16 kernel
(same arithmetic, other summation order). On all 60,920 validation windows of unseen artists
(`python -m musae_jax.tools.evaluate --workdir=RUN --split=validation --out=DIR`): accuracy drums
0.790, bass 0.899, guitar 0.875, strings 0.857 (mean 0.855; corpus_2bar_low_beta 0.852,
corpus_2bar 0.801); note accuracy drums 0.701 (0.680), pitched tracks 0.619 (0.615; bass 0.727,
guitar 0.628, strings 0.503); onset F1 0.655; prior fit MMD^2 0.110; genre probe 0.574;
interpolation monotone.
"""

from configs import corpus_2bar_low_beta


def get_config():
  config = corpus_2bar_low_beta.get_config()
  config.name = "corpus_2bar_step_position"
  config.model.step_position = True  # The decoders' first layers read [z, position one-hot].
  return config
