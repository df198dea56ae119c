"""lstm_impl="cudnn": cuDNN's weight packing, gate order and directions, checked on CPU through
jax.experimental.rnn's pure-JAX reference (the same packed vector cuDNN gets on a GPU) against
our reference kernel, layer by layer and through the whole model."""

import functools

from flax import nnx
import jax
from jax.experimental import rnn
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from musae_common.errors import UserError
from musae_jax import config_checks
from musae_jax import lstm
from musae_jax import lstm_cudnn
from musae_jax.model import MusAE

T, B, I, H = 7, 3, 5, 4


def _direction(seed, input_size=I):
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  return (jax.random.normal(k1, (input_size, 4 * H)) * 0.5,
          jax.random.normal(k2, (H, 4 * H)) * 0.5, jax.random.normal(k3, (4 * H,)) * 0.5)


def test_packing_is_the_layout_jax_experimental_rnn_reads():
  forward, backward = _direction(0), _direction(1)
  weights = lstm_cudnn.pack([forward, backward])
  assert weights.shape == (rnn.get_num_params_in_lstm(I, H, 1, True),)
  w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(weights, I, H, 1, True)
  for index, (ours_ih, ours_hh, ours_b) in enumerate((forward, backward)):
    np.testing.assert_array_equal(w_ih[index], ours_ih.T)
    np.testing.assert_array_equal(w_hh[index], ours_hh.T)
    np.testing.assert_array_equal(b_ih[index], ours_b)
    np.testing.assert_array_equal(b_hh[index], 0.0)


def _ours(x, directions, h0, c0):
  """The same layer through lstm_recurrence's reference kernel (the model's own path)."""
  outputs, finals_h, finals_c = [], [], []
  for index, (w_ih, w_hh, b) in enumerate(directions):
    hs, (h, c) = lstm.lstm_recurrence(x @ w_ih, w_hh, h0[index], c0[index], bias=b,
                                      reverse=index == 1, impl="reference")
    outputs.append(hs)
    finals_h.append(h)
    finals_c.append(c)
  return jnp.concatenate(outputs, -1), jnp.stack(finals_h), jnp.stack(finals_c)


@pytest.mark.parametrize("num_directions", [1, 2])
def test_a_layer_matches_the_reference_kernel_in_values_and_gradients(num_directions):
  directions = [_direction(seed) for seed in range(num_directions)]
  x = jax.random.normal(jax.random.key(7), (T, B, I))
  h0 = jax.random.normal(jax.random.key(8), (num_directions, B, H)) * 0.3
  c0 = jax.random.normal(jax.random.key(9), (num_directions, B, H)) * 0.3
  probe = jax.random.normal(jax.random.key(10), (T, B, num_directions * H))

  def loss(run, x, directions, h0, c0):
    hs, h_n, c_n = run(x, directions, h0, c0)
    return jnp.sum(hs * probe) + jnp.sum(h_n ** 2) + jnp.sum(jnp.sin(c_n))

  for got, want in zip(jax.jit(lstm_cudnn.run_layer)(x, directions, h0, c0),
                       jax.jit(_ours)(x, directions, h0, c0)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  grads = jax.jit(jax.grad(functools.partial(loss, lstm_cudnn.run_layer), argnums=(0, 1, 2, 3)))
  ref_grads = jax.jit(jax.grad(functools.partial(loss, _ours), argnums=(0, 1, 2, 3)))
  for got, want in zip(jax.tree.leaves(grads(x, directions, h0, c0)),
                       jax.tree.leaves(ref_grads(x, directions, h0, c0))):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _loss_and_grads(impl):
  config = default.get_config().model
  config.update(hidden_size=8, latent_size=6, critic_hidden_size=8, encoder_layers=2,
                decoder_layers=2, residual=True, lstm_impl=impl)
  model = MusAE(config, num_genres=0, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  tokens = jax.random.randint(jax.random.key(1), (B, 8, 4), 0, 130)

  def loss(params):
    model = nnx.merge(graphdef, params)
    mu, logvar = model.encode(tokens)
    logits = model.decode(mu + jnp.exp(0.5 * logvar), 8)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[..., None], -1))

  return jax.jit(jax.value_and_grad(loss))(params)


def test_the_model_on_cudnn_is_the_model_on_the_reference_kernel():
  # Residual stacks of two layers: the encoder's bidirectional layers, its summary of the two
  # directions' final states, and the decoders' z-at-every-step input all go through cuDNN's
  # packing; parameters (and so checkpoints) are the same whichever kernel runs.
  value, grads = _loss_and_grads("cudnn")
  ref_value, ref_grads = _loss_and_grads("reference")
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  assert jax.tree.structure(grads) == jax.tree.structure(ref_grads)
  for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-6)


def test_cudnn_is_named_not_picked_and_refuses_bfloat16():
  assert lstm.resolve_impl("cudnn") == "cudnn"
  assert lstm.resolve_impl("auto") != "cudnn"
  with pytest.raises(ValueError, match="whole layers"):
    lstm.lstm_recurrence(jnp.zeros((T, B, 4 * H)), jnp.zeros((H, 4 * H)), jnp.zeros((B, H)),
                         jnp.zeros((B, H)), impl="cudnn")
  config = default.get_config()
  config.model.lstm_impl = "cudnn"
  config_checks.validate(config)
  config.model.dtype = "bfloat16"
  with pytest.raises(UserError, match="float32 only"):
    config_checks.validate(config)
