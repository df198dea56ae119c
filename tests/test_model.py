"""The MusAE networks: shapes, what each part reads, kernel independence, bf16 compute."""

import functools

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from data_pipeline.tokens import NUM_CLASSES, SILENT, TRACKS
from musae_jax import lstm
from musae_common.errors import UserError
from musae_jax import config_checks
from musae_jax.model import MusAE, apply_matmul_precision, compute_dtype

BATCH, STEPS = 3, 8


def _model_config(**overrides):
  config = default.get_config().model
  config.hidden_size = 12
  config.latent_size = 6
  config.critic_hidden_size = 10
  config.encoder_layers = 2
  config.decoder_layers = 2
  config.update(overrides)
  return config


# Jitted once per model structure: op-by-op execution of the scans is far slower.
_encode = nnx.jit(lambda model, tokens: model.encode(tokens))
_decode = nnx.jit(lambda model, z, steps: model.decode(z, steps), static_argnums=2)
_critic = nnx.jit(lambda model, z, one_hot=None: model.critic(z, one_hot))


def _tokens(seed=0):
  return jax.random.randint(jax.random.key(seed), (BATCH, STEPS, 4), 0, NUM_CLASSES
                            ).astype(jnp.uint8)


def test_shapes_and_parameter_layout():
  model = MusAE(_model_config(), num_genres=0, rngs=nnx.Rngs(0))
  mu, logvar = _encode(model, _tokens())
  assert mu.shape == logvar.shape == (BATCH, 6) and mu.dtype == jnp.float32
  logits = _decode(model, mu, STEPS)
  assert logits.shape == (BATCH, STEPS, 4, NUM_CLASSES) and logits.dtype == jnp.float32
  assert _critic(model, mu).shape == (BATCH,)

  params = nnx.state(model, nnx.Param)
  encoder_first = params["encoder"]["forward_layers"][0]
  assert encoder_first["w_ih"].shape == (4 * NUM_CLASSES, 48)  # One-hot of 4 tracks -> 4H.
  assert params["encoder"]["backward_layers"][1]["w_ih"].shape == (24, 48)  # [fwd | bwd] -> 4H.
  assert sorted(params["decoders"].keys()) == sorted(TRACKS)
  drums = params["decoders"]["drums"]
  assert drums["layers"][0]["w_ih"].shape == (6, 48)  # Reads z.
  assert drums["layers"][1]["w_hh"].shape == (12, 48)
  assert drums["output"]["kernel"].shape == (12, NUM_CLASSES)
  assert params["critic_net"]["hidden1"]["kernel"].shape == (6, 10)


def test_flower_critic_reads_the_component_one_hot():
  model = MusAE(_model_config(prior="flower"), num_genres=4, rngs=nnx.Rngs(0))
  assert model.num_components == 5
  z = jnp.zeros((BATCH, 6))
  scores = [_critic(model, z, jax.nn.one_hot(jnp.full((BATCH,), k), 5)) for k in range(5)]
  assert len({float(s[0]) for s in scores}) == 5  # The component changes the score.
  with pytest.raises(ValueError, match="conditioned on the prior component"):
    model.critic(z)


def test_encoder_sees_the_whole_window_in_both_directions():
  model = MusAE(_model_config(), num_genres=0, rngs=nnx.Rngs(0))
  tokens = np.full((1, STEPS, 4), SILENT, np.uint8)
  base, _ = _encode(model, tokens)
  for step in (0, STEPS - 1):
    for track in range(4):
      changed = tokens.copy()
      changed[0, step, track] = 60
      mu, _ = _encode(model, changed)
      assert np.abs(np.asarray(mu - base)).max() > 1e-4, (step, track)


def test_decoder_tracks_have_their_own_weights_and_depend_only_on_z():
  model = MusAE(_model_config(), num_genres=0, rngs=nnx.Rngs(0))
  z = jax.random.normal(jax.random.key(3), (BATCH, 6))
  logits = _decode(model, z, STEPS)
  for i in range(1, 4):
    assert np.abs(np.asarray(logits[..., i, :] - logits[..., 0, :])).max() > 1e-3
  # Each window's output is a function of its own z only.
  np.testing.assert_allclose(_decode(model, z[:1], STEPS), logits[:1], rtol=1e-5, atol=1e-6)
  # Longer windows continue the same sequence (z is the input at every step).
  np.testing.assert_allclose(_decode(model, z, 2 * STEPS)[:, :STEPS], logits, rtol=1e-5,
                             atol=1e-6)


@functools.cache  # Shared by two tests: compiling a model's gradient takes seconds.
def _reconstruction_and_grads(impl, dtype="float32"):
  model = MusAE(_model_config(lstm_impl=impl, dtype=dtype), num_genres=0, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  tokens = _tokens(1)

  def loss(params):
    model = nnx.merge(graphdef, params)
    mu, logvar = model.encode(tokens)
    logits = model.decode(mu + jnp.exp(0.5 * logvar), STEPS)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits),
                                         tokens.astype(jnp.int32)[..., None], -1))

  return jax.jit(jax.value_and_grad(loss))(params)


def test_fast_and_reference_lstm_kernels_give_the_same_model_and_gradients():
  value, grads = _reconstruction_and_grads("scan")
  ref_value, ref_grads = _reconstruction_and_grads("reference")
  np.testing.assert_allclose(value, ref_value, rtol=1e-6)
  for grad, ref_grad in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-6)


def test_decoders_run_batched_or_one_by_one_with_the_same_results(monkeypatch):
  # On CPU the scan kernels run the four decoders one by one; force the batched (vmapped) path
  # that accelerators and the fused CPU kernel take, and compare outputs and gradients.
  assert not lstm.batches_well()
  model = MusAE(_model_config(lstm_impl="reference"), num_genres=0, rngs=nnx.Rngs(0))
  z = jax.random.normal(jax.random.key(3), (BATCH, 6))
  decode = lambda: nnx.jit(lambda model, z: model.decode(z, STEPS))(model, z)  # Traced anew.
  one_by_one = decode()
  value, grads = _reconstruction_and_grads("reference")
  monkeypatch.setattr(lstm, "batches_well", lambda: True)
  np.testing.assert_allclose(decode(), one_by_one, rtol=1e-6, atol=1e-7)
  batched_value, batched_grads = _reconstruction_and_grads.__wrapped__("reference")
  np.testing.assert_allclose(batched_value, value, rtol=1e-6)
  for grad, ref_grad in zip(jax.tree.leaves(batched_grads), jax.tree.leaves(grads)):
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)


def test_encoder_directions_run_in_one_loop_or_two_with_the_same_results(monkeypatch):
  # Accelerators run a biLSTM layer's two directions as one vmapped loop (the backward one over
  # its input reversed in time); CPUs run two. Same codes, same gradients.
  model = MusAE(_model_config(lstm_impl="reference", residual=True), num_genres=0,
                rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  tokens = _tokens(2)
  probe = jax.random.normal(jax.random.key(4), (BATCH, 6))

  def encode_loss(params):
    mu, logvar = nnx.merge(graphdef, params).encode(tokens)
    return jnp.sum(mu * probe) + jnp.sum(jnp.sin(logvar)), (mu, logvar)

  two_loops = jax.jit(jax.value_and_grad(encode_loss, has_aux=True))(params)
  monkeypatch.setattr(lstm, "batches_well", lambda: True)
  one_loop = jax.jit(jax.value_and_grad(encode_loss, has_aux=True))(params)
  for got, want in zip(jax.tree.leaves(one_loop), jax.tree.leaves(two_loops)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  grads = jax.tree.leaves(one_loop[1]["encoder"])
  assert all(np.any(np.asarray(g) != 0) for g in grads)  # Every parameter is reached.


def test_bfloat16_compute_keeps_float32_parameters_and_close_outputs():
  value32, grads32 = _reconstruction_and_grads("scan")
  value16, grads16 = _reconstruction_and_grads("scan", dtype="bfloat16")
  assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads16))
  np.testing.assert_allclose(value16, value32, rtol=0.02)
  flat32 = np.concatenate([np.ravel(g) for g in jax.tree.leaves(grads32)])
  flat16 = np.concatenate([np.ravel(g) for g in jax.tree.leaves(grads16)])
  cosine = flat32 @ flat16 / (np.linalg.norm(flat32) * np.linalg.norm(flat16))
  assert cosine > 0.99, cosine


def test_auto_compute_dtype_is_bfloat16_only_where_bf16_matmuls_run_and_pay(monkeypatch):
  from musae_jax import lstm_cpu  # pylint: disable=g-import-not-at-top
  if not lstm_cpu.AVAILABLE:
    pytest.skip("the fused CPU LSTM kernel is not built")
  auto = lambda **fields: compute_dtype(_model_config(dtype="auto", **fields))
  monkeypatch.setattr(lstm_cpu, "BF16_MATMULS", True)
  monkeypatch.setattr(lstm_cpu, "BF16_PAYS", True)
  assert auto(hidden_size=32, lstm_impl="auto") == jnp.bfloat16
  assert auto(hidden_size=32, lstm_impl="scan") == jnp.float32
  assert auto(hidden_size=10, lstm_impl="auto") == jnp.float32  # No whole vector.
  monkeypatch.setattr(lstm_cpu, "BF16_PAYS", False)  # bf16 dots slower than float32 FMAs.
  assert auto(hidden_size=32, lstm_impl="auto") == jnp.float32
  monkeypatch.setattr(lstm_cpu, "BF16_MATMULS", False)
  monkeypatch.setattr(lstm_cpu, "BF16_PAYS", False)
  assert auto(hidden_size=32, lstm_impl="auto") == jnp.float32
  # Asked for by name, bfloat16 is what runs.
  assert compute_dtype(_model_config(dtype="bfloat16")) == jnp.bfloat16


def test_unknown_compute_dtype_names_the_field():
  with pytest.raises(ValueError, match=r"config.model.dtype='float16'"):
    MusAE(_model_config(dtype="float16"), num_genres=0, rngs=nnx.Rngs(0))


def _zero_layers_above_first(model):
  """Zeroes every stacked LSTM layer but the first and the decoders' initial states: such a
  layer, started from h = c = 0, outputs h = 0 (g = tanh(0))."""
  stacks = [model.encoder.forward_layers, model.encoder.backward_layers]
  stacks += [model.decoders[track].layers for track in TRACKS]
  for track in TRACKS:
    initial = model.decoders[track].initial_state
    initial.kernel[...] = jnp.zeros_like(initial.kernel[...])
    initial.bias[...] = jnp.zeros_like(initial.bias[...])
  for stack in stacks:
    for layer in list(stack)[1:]:
      for name in ("w_ih", "w_hh", "b"):
        getattr(layer, name)[...] = jnp.zeros_like(getattr(layer, name)[...])


def test_residual_stack_passes_the_first_layer_through_zeroed_layers():
  # With residual connections, layers that output 0 leave the first layer's output unchanged:
  # a 3-layer residual model with layers 2-3 zeroed computes exactly what its first layer and
  # heads compute as a 1-layer model. Without residual connections it does not.
  deep = MusAE(_model_config(encoder_layers=3, decoder_layers=3, residual=True), num_genres=0,
               rngs=nnx.Rngs(0))
  _zero_layers_above_first(deep)
  shallow = MusAE(_model_config(encoder_layers=1, decoder_layers=1), num_genres=0,
                  rngs=nnx.Rngs(1))
  deep_params = nnx.state(deep, nnx.Param)
  shallow_params = nnx.state(shallow, nnx.Param)
  # The shallow model gets the deep one's first layers, heads and critic.
  for path, value in nnx.to_flat_state(shallow_params):
    deep_value = deep_params
    for part in path:
      deep_value = deep_value[part]
    value.set_value(deep_value.get_value())
  nnx.update(shallow, shallow_params)
  tokens = _tokens()
  np.testing.assert_allclose(_encode(deep, tokens)[0], _encode(shallow, tokens)[0], rtol=1e-5,
                             atol=1e-6)
  z = jax.random.normal(jax.random.key(2), (BATCH, 6))
  np.testing.assert_allclose(_decode(deep, z, STEPS), _decode(shallow, z, STEPS), rtol=1e-5,
                             atol=1e-5)
  plain = MusAE(_model_config(encoder_layers=3, decoder_layers=3), num_genres=0,
                rngs=nnx.Rngs(0))
  _zero_layers_above_first(plain)
  assert not np.allclose(_decode(plain, z, STEPS), _decode(shallow, z, STEPS), atol=1e-3)


@pytest.mark.parametrize("sigma", [1.0, 0.01])
def test_initial_posterior_std_sets_sigma_at_initialisation(sigma):
  model = MusAE(_model_config(initial_posterior_std=sigma), num_genres=0, rngs=nnx.Rngs(0))
  _, logvar = _encode(model, _tokens())
  # The logvar head's weights see small LSTM states at init: sigma is the configured one.
  np.testing.assert_allclose(np.exp(0.5 * np.asarray(logvar)), sigma, rtol=0.2)


def test_matmul_precision_comes_from_the_config_and_old_runs_get_the_default():
  try:
    apply_matmul_precision(_model_config(matmul_precision="highest"))
    assert jax.config.jax_default_matmul_precision == "highest"
    old_run = _model_config()
    del old_run["matmul_precision"]  # Saved before the field existed.
    apply_matmul_precision(old_run)
    assert jax.config.jax_default_matmul_precision is None
  finally:
    jax.config.update("jax_default_matmul_precision", None)
  config = default.get_config()
  config.model.matmul_precision = "tf32"
  with pytest.raises(UserError, match="matmul_precision='tf32'"):
    config_checks.validate(config)
