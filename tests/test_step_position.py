"""config.model.step_position: each track decoder's first layer also reads the one-hot of the
step's position in its bar.

The decoder is checked against its definition (the first layer reading [z, one-hot] materialised
at every step), on the flat and the hierarchical decoder, on the cuDNN and batched paths;
checkpoints without it are refused with the field named, and a model with it learns real windows.
"""

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from data_pipeline.tokens import STEPS_PER_BAR, TRACKS
from musae_common.errors import UserError
from musae_jax import checkpointing
from musae_jax import lstm
from musae_jax.model import MusAE
from tests import test_regularisers
from tests import test_step
from tests.train_helpers import assert_loss_and_grads_close
from tests.train_helpers import reconstruction_loss_and_grads as loss_and_grads

BATCH = 3
HIDDEN = 12
LATENT = 6


def _model_config(**overrides):
  config = default.get_config().model
  config.update(hidden_size=HIDDEN, latent_size=LATENT, critic_hidden_size=10, encoder_layers=2,
                decoder_layers=2, residual=True, lstm_impl="reference", step_position=True,
                conductor_hidden_size=7, conductor_layers=1)
  config.update(overrides)
  return config


def _decode_by_definition(decoder, z, num_steps):
  """The flat track decoder with its first layer's input [z, one-hot(t mod 16)] built at every
  step and projected as any sequence is (the residual stack of model.py, written out)."""
  one_hot = jax.nn.one_hot(jnp.arange(num_steps) % STEPS_PER_BAR, STEPS_PER_BAR)
  x = jnp.concatenate([jnp.broadcast_to(z, (num_steps, *z.shape)),
                       jnp.broadcast_to(one_hot[:, None], (num_steps, z.shape[0], STEPS_PER_BAR))],
                      axis=-1)
  state = jnp.tanh(decoder.initial_state(z))
  hs = None
  for layer in decoder.layers:
    below = x if hs is None else hs
    hs, _ = layer(layer.project(below), state, state)
    if layer is not decoder.layers[0]:
      hs = hs + below
  return decoder.output(hs)


def test_the_first_layer_reads_z_and_the_position_in_the_bar():
  model = MusAE(_model_config(), num_genres=0, rngs=nnx.Rngs(0))
  first = nnx.state(model, nnx.Param)["decoders"]["drums"]["layers"][0]
  assert first["w_ih"].shape == (LATENT + STEPS_PER_BAR, 4 * HIDDEN)
  plain = MusAE(_model_config(step_position=False), num_genres=0, rngs=nnx.Rngs(0))
  assert nnx.state(plain, nnx.Param)["decoders"]["drums"]["layers"][0]["w_ih"].shape == (
      LATENT, 4 * HIDDEN)
  z = jax.random.normal(jax.random.key(1), (BATCH, LATENT))
  logits = model.decode(z, 2 * STEPS_PER_BAR)  # [B, T, 4, 130]
  for index, track in enumerate(TRACKS):
    want = _decode_by_definition(model.decoders[track], z, 2 * STEPS_PER_BAR).transpose(1, 0, 2)
    np.testing.assert_allclose(logits[:, :, index], want, rtol=1e-5, atol=1e-5)
  # The position rows shape the output: zeroing them changes every track's logits.
  for track in TRACKS:
    w_ih = model.decoders[track].layers[0].w_ih
    w_ih[...] = w_ih[...].at[LATENT:].set(0.0)
  changed = np.abs(np.asarray(model.decode(z, 2 * STEPS_PER_BAR) - logits)).max(axis=(0, 1, 3))
  assert (changed > 1e-4).all()


@pytest.mark.parametrize("decoder", ["flat", "hierarchical"])
def test_cudnn_and_batched_paths_agree_and_gradients_reach_the_position_rows(decoder,
                                                                            monkeypatch):
  tokens = jax.random.randint(jax.random.key(2), (BATCH, 2 * STEPS_PER_BAR, 4), 0, 130)
  value, grads = loss_and_grads(_model_config(decoder=decoder), tokens)
  for track in TRACKS:
    position_grads = np.asarray(grads["decoders"][track]["layers"][0]["w_ih"][-STEPS_PER_BAR:])
    assert (np.abs(position_grads).max(axis=1) > 0).all(), track  # Every position is used.
  assert_loss_and_grads_close(loss_and_grads(_model_config(decoder=decoder, lstm_impl="cudnn"),
                                             tokens), (value, grads),
                              value_rtol=1e-5, grad_rtol=1e-3)
  monkeypatch.setattr(lstm, "batches_well", lambda: True)  # The four decoders vmapped as one.
  assert_loss_and_grads_close(loss_and_grads(_model_config(decoder=decoder), tokens),
                              (value, grads), value_rtol=1e-6, grad_rtol=1e-4)


def test_a_checkpoint_without_positions_is_refused_with_the_field_named():
  config = default.get_config()
  saved = checkpointing.config_to_dict(config)
  del saved["model"]["step_position"]  # A run saved before the field existed: no positions.
  checkpointing.check_compatible(saved, config, "run")
  config.model.step_position = True
  with pytest.raises(UserError, match=r"model.step_position: checkpoint False vs config True"):
    checkpointing.check_compatible(saved, config, "run")


def test_training_with_positions_learns_real_windows():
  config = test_step.tiny_config(**{"model.step_position": True, "optim.learning_rate": 1e-2,
                                    "optim.clip_global_norm": 1.0})
  _, first = test_regularisers._train(config, steps=1)
  _, metrics = test_regularisers._train(config, steps=30)
  assert float(metrics["loss/reconstruction"]) < 0.8 * float(first["loss/reconstruction"])
