r"""Where bf16 rounding moves a trained run's gradient (RESULTS.md, "Trained in bfloat16"): the
reconstruction gradient with bf16 matmuls in some parts of the model against the float32
gradient, on the same parameters, windows and posterior noise.

  python scripts/bf16_gradient_error.py --workdir=RUN --data_dir=DATA [--step=N] \
      [--batches=16] [--batch_size=32] [--split=validation]

Per variant it prints the error of single-batch gradients (|g_bf16 - g_f32| / |g_f32|), the
part of it that the batches share (the error of the mean gradient over the batches against the
mean gradient), what that shared part would be if the errors were independent noise (their RMS
over sqrt(batches), against the mean gradient), and, for scale, the float32 gradient's own
spread between batches (SGD noise) against its mean. A shared error above the noise level is a
bias that training follows step after step; noise it averages out. Two variants locate it:
float32 matmuls at the weights rounded to their nearest bf16 values, and bf16 matmuls at the
weights rounded stochastically, a fresh draw per batch as training draws one per step
(config.model.weight_rounding). Beside it, the variant's reconstruction of the same windows from
their posterior means (accuracy and note accuracy): what the rounding costs the trained model's
forward pass alone.
"""

from absl import app
from absl import flags
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from musae_jax import losses
from musae_jax import weight_rounding
from musae_jax.model import MusAE, reparameterize
from musae_jax.tools import input_windows
from musae_jax.tools import music_metrics
from musae_jax.tools import runs

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The run's built dataset.", required=True)
_SPLIT = flags.DEFINE_string("split", "validation", "Dataset split.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_BATCHES = flags.DEFINE_integer("batches", 16, "Batches of windows (seeded subset).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Windows per batch.")

# Variant -> (the parts computed in bf16, how the weight matrices are first rounded: None,
# "nearest" or "stochastic"). The critic does not enter the reconstruction gradient. The code
# heads make mu and log sigma^2 from the encoder's final states; the decoders' initial states
# are the first matmul that reads z.
BF16 = ("encoder", "decoders")
VARIANTS = {
    "bf16 everywhere": (BF16, None),
    "bf16 in the encoder only": (("encoder",), None),
    "bf16 in the decoders only": (("decoders",), None),
    "bf16 in the code heads only": (("code heads",), None),
    "bf16 in the initial states only": (("initial states",), None),
    "float32, weights rounded to nearest": ((), "nearest"),
    "bf16, weights rounded stochastically": (BF16, "stochastic"),
}


def rounded_weights(params, rounding: str | None, batch: int):
  """params as the variant's matmuls see them on the given batch: each float32 matrix (a matmul
  operand) rounded to its nearest bf16 values, as a cast rounds it the same way for every batch,
  or stochastically, a fresh draw per batch."""
  if rounding == "nearest":
    return weight_rounding.round_weights_to_nearest(params)
  if rounding == "stochastic":
    return weight_rounding.round_weights(params, jax.random.key(1_000_000 + batch))
  return params


def model_graph(run: runs.Run, bf16_parts) -> nnx.GraphDef:
  """The run's model with bf16 matmuls in bf16_parts and float32 elsewhere (same parameters)."""
  def build(dtype):
    config = run.config.model.copy_and_resolve_references()
    config.dtype = dtype
    return nnx.eval_shape(lambda: MusAE(config, len(run.genres), rngs=nnx.Rngs(params=0),
                                        num_bars=run.bars))
  model, bf16 = build("float32"), build("bfloat16")
  if "encoder" in bf16_parts:
    model.encoder = bf16.encoder
  if "decoders" in bf16_parts:
    model.decoders = bf16.decoders
  if "code heads" in bf16_parts:
    model.encoder.mu, model.encoder.logvar = bf16.encoder.mu, bf16.encoder.logvar
  if "initial states" in bf16_parts:
    for track in model.decoders:
      model.decoders[track].initial_state = bf16.decoders[track].initial_state
  return nnx.split(model, nnx.Param)[0]


def reconstruction_gradient(graphdef: nnx.GraphDef):
  def loss(params, tokens, key):
    model = nnx.merge(graphdef, params)
    mu, logvar = model.encode(tokens)
    logits = model.decode(reparameterize(key, mu, logvar), tokens.shape[1])
    return losses.reconstruction_loss(logits, tokens)[0]
  return jax.jit(jax.grad(loss))


def reconstruction_scores(run: runs.Run, graphdef: nnx.GraphDef, tokens: np.ndarray,
                          params=None) -> tuple[float, float]:
  """(accuracy, note accuracy), means over the tracks, of params (default: the run's) decoding
  the posterior means through graphdef's model."""
  params = run.params if params is None else params
  variant = runs.Run(run.workdir, run.config, run.genres, run.step, graphdef, params)
  counts = music_metrics.ReconstructionCounts()
  counts.update(variant.reconstruct(tokens), tokens)
  scores = counts.scores()
  return scores["accuracy"]["mean"], scores["note_accuracy"]["mean"]


def flat_gradients(gradient_fn, params, batches, rounding: str | None = None) -> np.ndarray:
  """[batches, parameters] float64: the autoencoder's gradient on each batch."""
  rows = []
  for i, (tokens, key) in enumerate(batches):
    leaves = jax.tree.leaves(gradient_fn(rounded_weights(params, rounding, i), tokens, key))
    rows.append(np.concatenate([np.ravel(np.asarray(g, np.float64)) for g in leaves]))
  return np.stack(rows)


def main(argv):
  del argv
  run = runs.load_run(_WORKDIR.value, _STEP.value)
  count, size = _BATCHES.value, _BATCH_SIZE.value
  windows = input_windows.split_windows(_DATA_DIR.value, run.bars, _SPLIT.value, count * size)
  count = len(windows) // size
  if count < 2:
    raise SystemExit(f"{_SPLIT.value}: {len(windows)} windows make fewer than 2 batches of {size}.")
  tokens = windows.tokens[:count * size]
  batches = [(jnp.asarray(tokens[i * size:(i + 1) * size], jnp.int32), jax.random.key(i))
             for i in range(count)]
  params = run.params  # The critic's gradients are zero: it does not enter this loss.
  float32_graph = model_graph(run, ())
  reference = flat_gradients(reconstruction_gradient(float32_graph), params, batches)
  mean = reference.mean(axis=0)
  sgd_noise = np.sqrt(((reference - mean) ** 2).sum(axis=1).mean()) / np.linalg.norm(mean)
  print(f"{run.workdir} step {run.step}: {count} batches of {size} {_SPLIT.value} windows; "
        f"the float32 gradient's spread between batches is {sgd_noise:.2f}x its mean")
  print(f"{'variant':38s} error per batch   shared error   as noise alone   accuracy   "
        "note accuracy")
  print(f"{'float32':38s} {'':15s}   {'':12s}   {'':14s}   "
        "{:.4f}     {:.4f}".format(*reconstruction_scores(run, float32_graph, tokens)))
  for name, (parts, rounding) in VARIANTS.items():
    graphdef = model_graph(run, parts)
    gradients = flat_gradients(reconstruction_gradient(graphdef), params, batches, rounding)
    error = np.linalg.norm(gradients - reference, axis=1) / np.linalg.norm(reference, axis=1)
    shared = np.linalg.norm((gradients - reference).mean(axis=0)) / np.linalg.norm(mean)
    noise = (np.sqrt(((gradients - reference) ** 2).sum(axis=1).mean() / count) /
             np.linalg.norm(mean))
    accuracy, note_accuracy = reconstruction_scores(run, graphdef, tokens,
                                                    rounded_weights(params, rounding, 0))
    print(f"{name:38s} {error.mean():.4f}            {shared:.4f}         {noise:.4f}           "
          f"{accuracy:.4f}     {note_accuracy:.4f}")


if __name__ == "__main__":
  app.run(main)
