"""The LSTM kernels: the custom-VJP scan matches autodiff and flax's own LSTM cell."""

import pathlib
import subprocess
import sys

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musae_common.errors import UserError
from musae_jax import lstm

REPO = pathlib.Path(__file__).resolve().parents[1]

STEPS, BATCH, HIDDEN = 7, 3, 5


def _inputs(constant: bool, seed: int = 0):
  keys = jax.random.split(jax.random.key(seed), 4)
  x_proj = jax.random.normal(keys[0], (1 if constant else STEPS, BATCH, 4 * HIDDEN))
  w_hh = 0.5 * jax.random.normal(keys[1], (HIDDEN, 4 * HIDDEN))
  h0 = jax.random.normal(keys[2], (BATCH, HIDDEN))
  c0 = jax.random.normal(keys[3], (BATCH, HIDDEN))
  return x_proj, w_hh, h0, c0


def _value_and_grads(impl, reverse, x_proj, w_hh, h0, c0):
  # Different weights on every output so that each cotangent path is exercised.
  weights = jax.random.normal(jax.random.key(9), (STEPS, BATCH, HIDDEN))

  def objective(x_proj, w_hh, h0, c0):
    hs, (h_last, c_last) = lstm.lstm_recurrence(x_proj, w_hh, h0, c0, reverse=reverse,
                                                impl=impl, num_steps=STEPS)
    return jnp.sum(hs * weights) + jnp.sum(h_last ** 2) + jnp.sum(jnp.sin(c_last)), hs

  return jax.value_and_grad(objective, argnums=(0, 1, 2, 3), has_aux=True)(x_proj, w_hh, h0, c0)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("constant", [False, True])
def test_fast_scan_matches_autodiff_reference(reverse, constant):
  args = _inputs(constant)
  (value, hs), grads = _value_and_grads("scan", reverse, *args)
  (ref_value, ref_hs), ref_grads = _value_and_grads("reference", reverse, *args)
  np.testing.assert_allclose(hs, ref_hs, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(value, ref_value, rtol=1e-6)
  for grad, ref_grad, arg in zip(grads, ref_grads, args):
    assert grad.shape == arg.shape
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-5)
  assert np.abs(grads[1]).max() > 1e-2  # The recurrent weight gradient is not trivially zero.


@pytest.mark.parametrize("reverse", [False, True])
def test_reference_matches_flax_optimized_lstm_cell(reverse):
  """Same weights in flax's cell (gate order i, f, g, o; kernels [in, 4H]) give the same run."""
  keys = jax.random.split(jax.random.key(1), 5)
  inputs = jax.random.normal(keys[0], (BATCH, STEPS, 4))
  w_ih = jax.random.normal(keys[1], (4, 4 * HIDDEN))
  w_hh = jax.random.normal(keys[2], (HIDDEN, 4 * HIDDEN))
  bias = jax.random.normal(keys[3], (4 * HIDDEN,))
  h0, c0 = jnp.zeros((BATCH, HIDDEN)), jnp.zeros((BATCH, HIDDEN))

  cell = nnx.OptimizedLSTMCell(4, HIDDEN, rngs=nnx.Rngs(0))
  cell.dense_i.kernel[...] = w_ih
  cell.dense_h.kernel[...] = w_hh
  cell.dense_h.bias[...] = bias
  rnn = nnx.RNN(cell, reverse=reverse, keep_order=True, return_carry=True)
  (flax_c, flax_h), flax_hs = rnn(inputs, initial_carry=(c0, h0))

  x_proj = jnp.einsum("bti,ig->tbg", inputs, w_ih) + bias
  for impl in ("reference", "scan"):
    hs, (h_last, c_last) = lstm.lstm_recurrence(x_proj, w_hh, h0, c0, reverse=reverse,
                                                impl=impl)
    np.testing.assert_allclose(hs.transpose(1, 0, 2), flax_hs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_last, flax_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c_last, flax_c, rtol=1e-5, atol=1e-5)


def test_bfloat16_recurrent_weights_keep_float32_state_and_stay_close():
  x_proj, w_hh, h0, c0 = _inputs(constant=False)
  hs32, _ = lstm.lstm_recurrence(x_proj, w_hh, h0, c0)
  for impl in ("scan", "reference"):
    (_, hs16), grads = _value_and_grads(impl, False, x_proj, w_hh.astype(jnp.bfloat16), h0, c0)
    assert hs16.dtype == jnp.float32 and grads[1].dtype == jnp.bfloat16
    np.testing.assert_allclose(hs16, hs32, atol=0.05)
  (_, _), fast = _value_and_grads("scan", False, x_proj, w_hh.astype(jnp.bfloat16), h0, c0)
  (_, _), ref = _value_and_grads("reference", False, x_proj, w_hh.astype(jnp.bfloat16), h0, c0)
  for grad, ref_grad in zip(fast, ref):
    np.testing.assert_allclose(np.float32(grad), np.float32(ref_grad), rtol=0.05, atol=0.05)


def test_one_hot_projection_is_the_one_hot_matmul():
  layer = lstm.LSTM(12, HIDDEN, rngs=nnx.Rngs(0))
  indices = jnp.array([[[0, 5, 11], [2, 3, 4]]])  # [1, 2, 3]: three hot entries per row.
  one_hot = jax.nn.one_hot(indices, 12).sum(axis=-2)
  np.testing.assert_allclose(layer.project_one_hot(indices), layer.project(one_hot),
                             rtol=1e-6, atol=1e-6)
  # Same gradient too (the gather-sum has its own VJP), repeated indices included.
  indices = jnp.array([[[0, 5, 11], [2, 2, 4]], [[7, 0, 0], [11, 3, 9]]])
  one_hot = jax.nn.one_hot(indices, 12).sum(axis=-2)
  weights = jax.random.normal(jax.random.key(1), (2, 2, 4 * HIDDEN))
  loss = lambda project, x: lambda layer: jnp.sum(weights * project(layer, x))
  grads = nnx.grad(loss(lstm.LSTM.project_one_hot, indices))(layer)
  ref_grads = nnx.grad(loss(lstm.LSTM.project, one_hot))(layer)
  np.testing.assert_allclose(grads["w_ih"][...], ref_grads["w_ih"][...], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(grads["b"][...], ref_grads["b"][...], rtol=1e-6, atol=1e-6)


@jax.custom_vjp
def _rounds_its_gradient_to_bf16(y):
  return y


_rounds_its_gradient_to_bf16.defvjp(lambda y: (y, None),
                                    lambda _, g: (g.astype(jnp.bfloat16).astype(g.dtype),))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_input_matmul_gradients_equal_autodiff_of_the_plain_matmul(dtype):
  keys = jax.random.split(jax.random.key(4), 3)
  x = jax.random.normal(keys[0], (5, 3, 8)).astype(dtype)  # [T, B, I]
  w = jax.random.normal(keys[1], (8, 16)).astype(dtype)
  weights = jax.random.normal(keys[2], (5, 3, 16))
  loss = lambda matmul: lambda x, w: jnp.sum(weights * matmul(x, w))
  # In bf16 the output gradient is rounded to bf16 before the backward matmuls (as autocast does).
  rounded = _rounds_its_gradient_to_bf16 if dtype == jnp.bfloat16 else lambda y: y
  plain = lambda x, w: rounded(jnp.dot(x, w, preferred_element_type=jnp.float32))
  grads = jax.jit(jax.grad(loss(lstm.input_matmul), argnums=(0, 1)))(x, w)
  ref_grads = jax.jit(jax.grad(loss(plain), argnums=(0, 1)))(x, w)
  for grad, ref_grad in zip(grads, ref_grads):
    assert grad.dtype == ref_grad.dtype == dtype
    np.testing.assert_allclose(np.float32(grad), np.float32(ref_grad), rtol=1e-5, atol=1e-5)
  # Under vmap too (MusAE's decoders run batched over tracks).
  batched = jax.vmap(jax.grad(loss(lstm.input_matmul), argnums=1))(x[None].repeat(2, 0),
                                                                    w[None].repeat(2, 0))
  np.testing.assert_allclose(np.float32(batched[1]), np.float32(ref_grads[1]), rtol=1e-5,
                             atol=1e-5)


# A short and a longer sequence [T, B], and a dense layer's batch [B] (the code heads, critic).
@pytest.mark.parametrize("leading", [(3, 3), (40, 3), (24,)])
def test_bf16_input_matmul_of_float32_arrays_gives_float32_gradients_close_to_float32(leading):
  keys = jax.random.split(jax.random.key(5), 3)
  x = jax.random.normal(keys[0], (*leading, 48))
  w = jax.random.normal(keys[1], (48, 32))
  weights = jax.random.normal(keys[2], (*leading, 32))
  loss = lambda dtype: lambda x, w: jnp.sum(weights * lstm.input_matmul(x, w, dtype))
  value, grads = jax.jit(jax.value_and_grad(loss(jnp.bfloat16), argnums=(0, 1)))(x, w)
  ref_value, ref_grads = jax.jit(jax.value_and_grad(loss(jnp.float32), argnums=(0, 1)))(x, w)
  np.testing.assert_allclose(value, ref_value, rtol=2e-2, atol=0.5)
  for grad, ref_grad in zip(grads, ref_grads):
    assert grad.dtype == jnp.float32
    np.testing.assert_allclose(grad, ref_grad, atol=2e-2 * float(jnp.abs(ref_grad).max()))
    assert not np.array_equal(grad, ref_grad)  # The bf16 matmuls did run.


def test_split_input_projection_equals_concatenated_input():
  layer = lstm.LSTM(6, HIDDEN, rngs=nnx.Rngs(0))
  a, b = jax.random.normal(jax.random.key(0), (2, STEPS, BATCH, 3))
  np.testing.assert_allclose(layer.project(a, b), layer.project(jnp.concatenate([a, b], -1)),
                             rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="w_ih expects 6"):
    layer.project(a)


def test_keras_initialisation_forget_bias_one_and_orthogonal_recurrent_weights():
  layer = lstm.LSTM(3, HIDDEN, rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(layer.b[...].reshape(4, HIDDEN),
                                np.repeat([[0.0], [1.0], [0.0], [0.0]], HIDDEN, axis=1))
  w_hh = np.asarray(layer.w_hh[...])
  np.testing.assert_allclose(w_hh @ w_hh.T, np.eye(HIDDEN), atol=1e-5)  # Orthonormal rows.


def test_registry_dispatches_to_added_kernels_and_rejects_unknown(monkeypatch):
  calls = []

  def counting_kernel(x_proj, w_hh, h0, c0, *, reverse, num_steps):
    calls.append((reverse, num_steps))
    return lstm.IMPLEMENTATIONS["reference"](x_proj, w_hh, h0, c0, reverse=reverse,
                                             num_steps=num_steps)

  monkeypatch.setitem(lstm.IMPLEMENTATIONS, "counting", counting_kernel)
  monkeypatch.setattr(lstm, "AUTO_PREFERENCE", ["counting", "scan"])
  x_proj, w_hh, h0, c0 = _inputs(constant=True)
  hs, _ = lstm.lstm_recurrence(x_proj, w_hh, h0, c0, impl="auto", num_steps=STEPS)
  assert calls == [(False, STEPS)] and hs.shape == (STEPS, BATCH, HIDDEN)
  with pytest.raises(UserError, match="Unknown LSTM implementation 'miopen'"):
    lstm.lstm_recurrence(x_proj, w_hh, h0, c0, impl="miopen")
  with pytest.raises(ValueError, match="x_proj has 2 steps but num_steps=7"):
    lstm.lstm_recurrence(jnp.zeros((2, BATCH, 4 * HIDDEN)), w_hh, h0, c0, num_steps=STEPS)


def test_lstm_owns_the_registry_and_the_cpu_kernel_module_registers_nothing():
  # A fresh interpreter: importing the fused kernel's module leaves musae_jax.lstm unimported
  # (no import cycle) and, once both are imported, the registry as lstm.py wrote it.
  code = ("import sys; from musae_jax import lstm_cpu; "
          "assert 'musae_jax.lstm' not in sys.modules, 'lstm_cpu imports lstm'; "
          "from musae_jax import lstm; "
          "assert sorted(lstm.IMPLEMENTATIONS) == ['cpu_fused', 'reference', 'scan']; "
          "assert lstm.AUTO_PREFERENCE == ['cpu_fused', 'scan']; "
          "print(lstm.resolve_impl('auto'), lstm_cpu.AVAILABLE)")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  resolved, built = result.stdout.split()
  assert resolved == ("cpu_fused" if built == "True" else "scan")
