"""How much signal survives MusAE's stacked LSTMs at initialisation (RESULTS.md, cause 1).

  python scripts/signal_at_init.py --data_dir=repro/tfds --layers=3 --hidden=256 [--residual]

For one batch of validation windows: per encoder layer, the spread across windows of the
layer's final states (what the code can tell apart); per decoder layer, the spread across
unit-scale codes of the layer's outputs (how much z moves what the decoder emits). Each layer's
output is the model's own encoder or decoder cut after that layer, its head (mu, the softmax
projection) replaced by the identity.
"""

from absl import app
from absl import flags
from flax import nnx
import jax
import jax.numpy as jnp

from data_pipeline import loader
from musae_jax import default_config
from musae_jax.model import MusAE

_DATA_DIR = flags.DEFINE_string("data_dir", "repro/tfds", "TFDS data_dir with a 2-bar dataset.")
_LAYERS = flags.DEFINE_integer("layers", 3, "LSTM layers per stack.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "LSTM units.")
_RESIDUAL = flags.DEFINE_bool("residual", False, "Residual connections between layers.")
_BATCH = 64


def main(argv):
  del argv
  config = default_config.get_config().model
  config.hidden_size, config.latent_size = _HIDDEN.value, 128
  config.encoder_layers = config.decoder_layers = _LAYERS.value
  config.residual = _RESIDUAL.value
  config.lstm_impl = "reference"
  tokens = jnp.asarray(next(iter(loader.eval_batches(_DATA_DIR.value, 2, _BATCH)))["tokens"],
                       jnp.int32)
  model = MusAE(config, num_genres=0, rngs=nnx.Rngs(params=0))
  encoder, decoder = model.encoder, model.decoders["bass"]
  forward, backward, layers = (list(encoder.forward_layers), list(encoder.backward_layers),
                               list(decoder.layers))
  encoder.mu = decoder.output = lambda x: x
  for depth in range(1, _LAYERS.value + 1):
    encoder.forward_layers = nnx.List(forward[:depth])
    encoder.backward_layers = nnx.List(backward[:depth])
    summary, _ = encoder(tokens)  # The final forward and backward states of layer `depth`.
    print(f"encoder layer {depth}: spread of the final states across windows "
          f"{float(jnp.mean(jnp.std(summary, axis=0))):.4f}")
  z = jax.random.normal(jax.random.key(1), (_BATCH, config.latent_size))
  steps = tokens.shape[1]
  for depth in range(1, _LAYERS.value + 1):
    decoder.layers = nnx.List(layers[:depth])
    hs = decoder(z, steps)  # [T, B, H]: the outputs of layer `depth`.
    # The second half of the window: past the initial state's direct influence.
    print(f"decoder layer {depth}: spread of the outputs across codes "
          f"{float(jnp.mean(jnp.std(hs[steps // 2:], axis=1))):.4f}")


if __name__ == "__main__":
  app.run(main)
