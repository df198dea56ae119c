"""How much signal survives MusAE's stacked LSTMs at initialisation (RESULTS.md, cause 1).

  python docs/signal_at_init.py --data_dir=repro/tfds --layers=3 --hidden=256 [--residual]

For one batch of validation windows: per encoder layer, the spread across windows of the
layer's final states (what the code can tell apart); per decoder layer, the spread across
unit-scale codes of the layer's outputs (how much z moves what the decoder emits).
"""

import os
import sys

from absl import app
from absl import flags
from flax import nnx
import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import default
from data_pipeline import loader
from data_pipeline.tokens import NUM_CLASSES, NUM_TRACKS
from musae_jax.model import MusAE

_DATA_DIR = flags.DEFINE_string("data_dir", "repro/tfds", "TFDS data_dir with a 2-bar dataset.")
_LAYERS = flags.DEFINE_integer("layers", 3, "LSTM layers per stack.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "LSTM units.")
_RESIDUAL = flags.DEFINE_bool("residual", False, "Residual connections between layers.")
_BATCH = 64


def main(argv):
  del argv
  config = default.get_config().model
  config.hidden_size, config.latent_size = _HIDDEN.value, 128
  config.encoder_layers = config.decoder_layers = _LAYERS.value
  config.residual = _RESIDUAL.value
  config.lstm_impl = "reference"
  tokens = jnp.asarray(next(iter(loader.eval_batches(_DATA_DIR.value, 2, _BATCH)))["tokens"],
                       jnp.int32)
  model = MusAE(config, num_genres=0, rngs=nnx.Rngs(params=0))
  encoder = model.encoder
  hot = tokens.transpose(1, 0, 2) + NUM_CLASSES * jnp.arange(NUM_TRACKS)
  zeros = jnp.zeros((_BATCH, _HIDDEN.value))
  inputs = None
  for depth, (forward, backward) in enumerate(zip(encoder.forward_layers,
                                                  encoder.backward_layers)):
    if inputs is None:
      x_forward, x_backward = forward.project_one_hot(hot), backward.project_one_hot(hot)
    else:
      x_forward, x_backward = forward.project(*inputs), backward.project(*inputs)
    hs_forward, _ = forward(x_forward, zeros, zeros)
    hs_backward, _ = backward(x_backward, zeros, zeros, reverse=True)
    if config.residual and inputs is not None:
      hs_forward, hs_backward = hs_forward + inputs[0], hs_backward + inputs[1]
    inputs = (hs_forward, hs_backward)
    summary = jnp.concatenate([hs_forward[-1], hs_backward[0]], axis=-1)
    print(f"encoder layer {depth + 1}: spread of the final states across windows "
          f"{float(jnp.mean(jnp.std(summary, axis=0))):.4f}")
  decoder = model.decoders["bass"]
  z = jax.random.normal(jax.random.key(1), (_BATCH, config.latent_size))
  state = jnp.tanh(decoder.initial_state(z))
  x_proj, hs = decoder.layers[0].project(z)[None], None
  steps = tokens.shape[1]
  for depth, layer in enumerate(decoder.layers):
    below = hs
    if below is not None:
      x_proj = layer.project(below)
    hs, _ = layer(x_proj, state, state, num_steps=steps)
    if config.residual and below is not None:
      hs = hs + below
    # The second half of the window: past the initial state's direct influence.
    print(f"decoder layer {depth + 1}: spread of the outputs across codes "
          f"{float(jnp.mean(jnp.std(hs[steps // 2:], axis=1))):.4f}")


if __name__ == "__main__":
  app.run(main)
