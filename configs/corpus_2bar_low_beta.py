"""configs/corpus_2bar.py with the adversarial loss's weight beta capped at 0.3 instead of the
paper's 1 and decoupled weight decay 0.05, trained 30,000 steps: the 2-bar config that passes
corpus_2bar's plateau.

A departure from the paper (MusAE anneals beta to 1). At equal budget the beta ceiling is what
holds corpus_2bar at validation accuracy 0.80 (RESULTS.md, "What holds the 2-bar model at 0.80"):
with beta capped at 0.3 the same model, data, seed and schedules keep improving past step 10,000,
where corpus_2bar flattens, and by the evaluation report's "Prior fit" the codes match the
Gaussian prior no worse than corpus_2bar's do. Weight decay (RESULTS.md, "Regularisers at equal
budget") lifts every track by 0.01-0.02 more, and the fit to the training windows with them.

Command:
  python -m musae_jax.main --config=configs/corpus_2bar_low_beta.py \
      --config.data.midi_dir=../shared/data/midi --config.data.genres_file=../shared/data/genres.json
Result (RESULTS.md): trained at commit 68be0d2 on a 2-core Intel Xeon (family 6 model 207,
AVX512-BF16: bf16 matmuls) to step 20,000 (83 minutes on one core) and resumed to 30,000 (26
minutes on two; the schedules depend on the step only). On all 60,920 validation windows of
unseen artists (`python -m musae_jax.tools.evaluate --workdir=RUN --split=validation --out=DIR`):
accuracy drums 0.771, bass 0.904, guitar 0.880, strings 0.852 (mean 0.852; corpus_2bar 0.801);
note accuracy drums 0.680, pitched tracks 0.615 (bass 0.738, guitar 0.634, strings 0.474);
onset F1 0.647; prior fit MMD^2 0.101. Without weight decay (b6f6cb6): mean 0.838, note
accuracy drums 0.670, pitched 0.593.
"""

from configs import corpus_2bar


def get_config():
  config = corpus_2bar.get_config()
  config.name = "corpus_2bar_low_beta"
  config.num_train_steps = 30_000  # The curve still rises at 20,000 steps with beta at 0.3.
  # bfloat16 matmuls where they pay (AMX tiles, or AMD Zen 4/5: 1.6-2.4x the steps/s), else float32.
  config.model.dtype = "auto"
  config.optim.beta_max = 0.3  # beta reaches it at step 6,000 (+0.01 every 200 updates).
  config.optim.weight_decay = 0.05  # AdamW on the autoencoder's matrices: +0.014 accuracy at 30k.
  return config
