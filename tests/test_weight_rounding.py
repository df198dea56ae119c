"""Stochastic rounding of the weights for bf16 matmuls (musae_jax/weight_rounding.py)."""

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from musae_jax import losses
from musae_jax import step as step_lib
from musae_jax import weight_rounding
from musae_jax.model import MusAE
from tests import test_step


def _small_model(hidden_size=32):
  config = test_step.tiny_config(**{"model.hidden_size": hidden_size}).model
  return MusAE(config, num_genres=0, rngs=nnx.Rngs(params=0))


def _bf16_neighbours(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The bf16 values next to x towards zero and away from it."""
  bits = x.view(np.uint32)
  toward_zero = bits & np.uint32(0xFFFF0000)
  return toward_zero.view(np.float32), (toward_zero + np.uint32(0x10000)).view(np.float32)


def test_each_weight_goes_to_a_bf16_neighbour_with_probability_by_distance():
  # An LSTM's initialised recurrent weights, rounded with 256 random seeds.
  x = jnp.asarray(_small_model().decoders["bass"].layers[0].w_hh[...])
  seeds = jax.random.bits(jax.random.key(0), (256,), jnp.uint32)
  draws = np.stack([np.asarray(weight_rounding.stochastic_round(x, seed)) for seed in seeds])
  x = np.asarray(x)
  near, far = _bf16_neighbours(x)
  assert np.all((draws == near) | (draws == far))
  distance = (x - near) / (far - near)  # The chance of going away from zero.
  frequency = (draws == far).mean(axis=0)
  # Binomial spread over 256 draws: |frequency - distance| averages ~0.02 at most. Rounding to
  # nearest would give ~0.25, truncation ~0.5.
  assert np.abs(frequency - distance).mean() < 0.04
  assert 0.3 < frequency.mean() < 0.7


def test_round_weights_rounds_matrices_only_and_passes_the_gradient_through():
  params = nnx.state(_small_model(), nnx.Param)
  rounded = weight_rounding.round_weights(params, jax.random.key(0))
  again = weight_rounding.round_weights(params, jax.random.key(1))
  for x, r, a in zip(jax.tree.leaves(params), jax.tree.leaves(rounded), jax.tree.leaves(again)):
    x, r, a = np.asarray(x), np.asarray(r), np.asarray(a)
    if x.ndim < 2:  # Biases are added in float32.
      np.testing.assert_array_equal(r, x)
      continue
    np.testing.assert_array_equal(r, r.astype(jnp.bfloat16).astype(np.float32))
    assert np.any(r != x) and np.any(r != a)  # Rounded, and a fresh draw for another key.
  weights = jax.tree.map(lambda x: jnp.full_like(x, 3.0), params)
  gradient = jax.grad(lambda p: sum(
      jnp.sum(w * r) for w, r in zip(jax.tree.leaves(weights), jax.tree.leaves(
          weight_rounding.round_weights(p, jax.random.key(0))))))(params)
  assert all(np.all(np.asarray(g) == 3.0) for g in jax.tree.leaves(gradient))
  special = jnp.array([[jnp.nan, jnp.inf, -jnp.inf, 0.0]])
  np.testing.assert_array_equal(weight_rounding.stochastic_round(special, jnp.uint32(5)), special)


def test_stochastic_rounding_removes_the_gradient_bias_of_rounding_to_nearest():
  # The reconstruction gradient on real windows, float32 matmuls, at rounded weights: rounded
  # to nearest it errs the same way every time; stochastically, 32 draws average it away.
  model = _small_model()
  graphdef, params = nnx.split(model, nnx.Param)
  tokens = jnp.asarray(test_step.real_windows(), jnp.int32)

  @jax.jit
  def gradient(params):
    def loss(params):
      model = nnx.merge(graphdef, params)
      mu, _ = model.encode(tokens)
      return losses.reconstruction_loss(model.decode(mu, tokens.shape[1]), tokens)[0]
    return jnp.concatenate([jnp.ravel(g) for g in jax.tree.leaves(jax.grad(loss)(params))])

  exact = gradient(params)
  nearest = gradient(weight_rounding.round_weights_to_nearest(params))
  stochastic = jnp.mean(jnp.stack([
      gradient(weight_rounding.round_weights(params, jax.random.key(k))) for k in range(32)]), 0)
  nearest_error = float(jnp.linalg.norm(nearest - exact))
  assert nearest_error > 0
  assert float(jnp.linalg.norm(stochastic - exact)) < 0.5 * nearest_error


def test_the_train_step_rounds_weights_stochastically_only_in_bf16():
  def one_step(**fields):
    config = test_step.tiny_config(**fields)
    graphdef, state = step_lib.create_train_state(config, 0)
    state, _ = jax.jit(step_lib.make_train_step(config, graphdef, 0))(state, test_step.batch())
    return [np.asarray(x) for x in jax.tree.leaves(state.params)]

  # Ignored in float32: the same program.
  for a, b in zip(one_step(**{"model.weight_rounding": "nearest"}),
                  one_step(**{"model.weight_rounding": "stochastic"})):
    np.testing.assert_array_equal(a, b)
  bf16 = {"model.dtype": "bfloat16", "model.lstm_impl": "scan"}
  nearest = one_step(**bf16, **{"model.weight_rounding": "nearest"})
  stochastic = one_step(**bf16, **{"model.weight_rounding": "stochastic"})
  assert any(np.any(a != b) for a, b in zip(nearest, stochastic))
  for a, b in zip(stochastic, one_step(**bf16, **{"model.weight_rounding": "stochastic"})):
    np.testing.assert_array_equal(a, b)  # Deterministic: the draws come from the step's key.
