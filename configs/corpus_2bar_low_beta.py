"""configs/corpus_2bar.py with the adversarial loss's weight beta capped at 0.3 instead of the
paper's 1, trained 30,000 steps: the 2-bar config that passes corpus_2bar's plateau.

A departure from the paper (MusAE anneals beta to 1). At equal budget the beta ceiling is what
holds corpus_2bar at validation accuracy 0.80 (RESULTS.md, "What holds the 2-bar model at 0.80"):
with beta capped at 0.3 the same model, data, seed and schedules keep improving past step 10,000,
where corpus_2bar flattens, and by the evaluation report's "Prior fit" the codes match the
Gaussian prior no worse than corpus_2bar's do.

Command:
  python -m musae_jax.main --config=configs/corpus_2bar_low_beta.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result (RESULTS.md): 30,000 steps in 83 minutes on a 2-core Intel Xeon (family 6 model 207,
AVX512-BF16: bf16 matmuls, 6.0 steps/s with the test suite sharing the machine at times), trained
at commit b6f6cb6. On all 60,920 validation windows of unseen artists
(`python -m musae_jax.tools.evaluate --workdir=RUN --split=validation --out=DIR`): accuracy drums
0.767, bass 0.889, guitar 0.864, strings 0.834 (mean 0.838; corpus_2bar 0.801); note accuracy
drums 0.670, pitched tracks 0.593 (bass 0.714, guitar 0.610, strings 0.454); onset F1 0.629;
prior fit MMD^2 0.186 (corpus_2bar in bf16: 0.386).
"""

from configs import corpus_2bar


def get_config():
  config = corpus_2bar.get_config()
  config.name = "corpus_2bar_low_beta"
  config.num_train_steps = 30_000  # The curve still rises at 20,000 steps with beta at 0.3.
  # bfloat16 matmuls on a CPU with bf16 dot instructions (1.6x the steps/s there), else float32.
  config.model.dtype = "auto"
  config.optim.beta_max = 0.3  # beta reaches it at step 6,000 (+0.01 every 200 updates).
  return config
