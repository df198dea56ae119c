"""config.model.encoder="hierarchical": the encoder's stack reads each bar on its own and one more
biLSTM layer reads the bars' summaries.

Shapes, that the code is built from every bar read on its own (checked window by window and bar by
bar against the flat stack), gradients, the cuDNN and batched paths, and checkpoints of the other
kind refused. A run trained with it goes through the tools in test_hierarchical.py."""

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from data_pipeline.tokens import NUM_CLASSES, STEPS_PER_BAR
from musae_common.errors import UserError
from musae_jax import checkpointing
from musae_jax import config_checks
from musae_jax import lstm
from musae_jax.model import MusAE
from tests.train_helpers import assert_loss_and_grads_close
from tests.train_helpers import assert_new_shape_field_resumes_old_runs_and_refuses_other_values
from tests.train_helpers import reconstruction_loss_and_grads as loss_and_grads

BATCH = 3
HIDDEN = 12


def _model_config(**overrides):
  config = default.get_config().model
  config.update(hidden_size=HIDDEN, latent_size=6, critic_hidden_size=10, encoder_layers=2,
                decoder_layers=2, residual=True, lstm_impl="reference", encoder="hierarchical")
  config.update(overrides)
  return config


def _tokens(bars, seed=1):
  return jax.random.randint(jax.random.key(seed), (BATCH, bars * STEPS_PER_BAR, 4), 0,
                            NUM_CLASSES)


def test_parameters_and_shapes():
  model = MusAE(_model_config(), num_genres=0, rngs=nnx.Rngs(0))
  encoder = nnx.state(model, nnx.Param)["encoder"]
  assert encoder["bar_forward"]["w_ih"].shape == (2 * HIDDEN, 4 * HIDDEN)  # A bar's summary.
  assert encoder["bar_backward"]["w_hh"].shape == (HIDDEN, 4 * HIDDEN)
  assert encoder["mu"]["kernel"].shape == (2 * HIDDEN, 6)
  for bars in (1, 2, 16):
    mu, logvar = model.encode(_tokens(bars))
    assert mu.shape == logvar.shape == (BATCH, 6)
  with pytest.raises(ValueError, match="whole bars"):
    model.encode(_tokens(2)[:, :24])
  flat = MusAE(_model_config(encoder="flat"), num_genres=0, rngs=nnx.Rngs(0))
  assert "bar_forward" not in nnx.state(flat, nnx.Param)["encoder"]


def test_the_code_is_read_from_each_bar_on_its_own():
  """mu of a batch of windows equals mu computed window by window, from each bar's summary by the
  stack alone (a bar sees no other bar, a window no other window) and then the bar layer."""
  model = MusAE(_model_config(), num_genres=0, rngs=nnx.Rngs(0))
  encoder = model.encoder
  tokens = _tokens(3)
  mu, _ = model.encode(tokens)
  zeros = jnp.zeros((1, HIDDEN))
  for row in range(BATCH):
    summaries = jnp.stack([
        encoder._summarize(tokens[row:row + 1, bar * STEPS_PER_BAR:(bar + 1) * STEPS_PER_BAR],
                           None)[0] for bar in range(3)])[:, None]  # [bars, 1, 2H]
    _, (h_forward, _) = encoder.bar_forward(encoder.bar_forward.project(summaries), zeros, zeros)
    _, (h_backward, _) = encoder.bar_backward(encoder.bar_backward.project(summaries), zeros,
                                              zeros, reverse=True)
    want = encoder.mu(jnp.concatenate([h_forward, h_backward], axis=-1))[0]
    np.testing.assert_allclose(mu[row], want, rtol=1e-5, atol=1e-6)
  # The first and the last bar both reach the code.
  for bar in (0, 2):
    changed = tokens.at[:, bar * STEPS_PER_BAR + 3].set((tokens[:, bar * STEPS_PER_BAR + 3] + 1) %
                                                        NUM_CLASSES)
    assert (np.abs(np.asarray(model.encode(changed)[0] - mu)).max(axis=-1) > 1e-6).all()


def test_gradients_reach_every_encoder_layer_and_the_batched_path_agrees(monkeypatch):
  tokens = _tokens(2)
  value, grads = loss_and_grads(_model_config(), tokens)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads["encoder"]):
    assert np.any(np.asarray(grad) != 0), jax.tree_util.keystr(path)
  # Accelerators run a biLSTM layer's two directions as one vmapped loop: same numbers.
  monkeypatch.setattr(lstm, "batches_well", lambda: True)
  assert_loss_and_grads_close(loss_and_grads(_model_config(), tokens), (value, grads),
                              value_rtol=1e-6, grad_rtol=1e-4)


def test_the_hierarchical_encoder_on_cudnn_is_the_encoder_on_the_reference_kernel():
  tokens = _tokens(2, seed=2)
  config = dict(decoder="hierarchical", conductor_hidden_size=7, conductor_layers=1)
  assert_loss_and_grads_close(loss_and_grads(_model_config(lstm_impl="cudnn", **config), tokens),
                              loss_and_grads(_model_config(**config), tokens),
                              value_rtol=1e-5, grad_rtol=1e-3)


def test_a_checkpoint_of_the_other_encoder_is_refused_with_the_fields_named():
  config = default.get_config()
  saved_flat = checkpointing.config_to_dict(config)
  del saved_flat["model"]["encoder"]  # A run saved before the field existed: flat.
  checkpointing.check_compatible(saved_flat, config, "run")
  hierarchical = default.get_config()
  hierarchical.model.encoder = "hierarchical"
  with pytest.raises(UserError, match=r"model.encoder: checkpoint 'flat' vs config "
                                      r"'hierarchical'"):
    checkpointing.check_compatible(saved_flat, hierarchical, "run")


def test_a_wider_layer_over_the_bars_gives_a_wider_summary():
  """encoder_summary_size widens only the layer over the bars: z reads its 2 x size states."""
  model = MusAE(_model_config(encoder_summary_size=20), num_genres=0, rngs=nnx.Rngs(0))
  encoder = nnx.state(model, nnx.Param)["encoder"]
  assert encoder["bar_forward"]["w_ih"].shape == (2 * HIDDEN, 4 * 20)  # Reads a bar's summary.
  assert encoder["bar_backward"]["w_hh"].shape == (20, 4 * 20)
  assert encoder["mu"]["kernel"].shape == encoder["logvar"]["kernel"].shape == (2 * 20, 6)
  assert encoder["forward_layers"][1]["w_hh"].shape == (HIDDEN, 4 * HIDDEN)  # The stack is not.
  mu, _ = model.encode(_tokens(2))
  assert mu.shape == (BATCH, 6)
  grads = nnx.grad(lambda m: jnp.sum(m.encode(_tokens(2))[0] ** 2))(model)
  assert float(jnp.abs(grads.encoder.bar_forward.w_hh[...]).max()) > 0
  # A run saved before the field existed had the default; another width is refused by name.
  config = default.get_config()
  config.model.encoder = "hierarchical"
  assert_new_shape_field_resumes_old_runs_and_refuses_other_values(config, "encoder_summary_size",
                                                                   1024)
  # It sizes a layer only the hierarchical encoder has.
  config.model.encoder = "flat"
  with pytest.raises(UserError, match="the flat encoder has none"):
    config_checks.validate(config)
  config.model.encoder_summary_size = -1
  with pytest.raises(UserError, match="must be >= 0"):
    config_checks.validate(config)


def test_the_concatenating_bar_reader_gives_z_from_every_bar_summary_side_by_side():
  """encoder_bar_reader="concat": z's heads read the bars' summaries concatenated in bar order,
  with no layer over the bars; the window's bar count sizes the heads."""
  model = MusAE(_model_config(encoder_bar_reader="concat"), num_genres=0, rngs=nnx.Rngs(0),
                num_bars=2)
  encoder = model.encoder
  params = nnx.state(encoder, nnx.Param)
  assert "bar_forward" not in params
  assert params["mu"]["kernel"].shape == params["logvar"]["kernel"].shape == (2 * 2 * HIDDEN, 6)
  tokens = _tokens(2)
  per_bar = [encoder._summarize(tokens[:, bar * STEPS_PER_BAR:(bar + 1) * STEPS_PER_BAR], None)
             for bar in range(2)]
  side_by_side = jnp.concatenate(per_bar, axis=-1)  # [B, bar 1's 2H, bar 2's 2H].
  mu, logvar = model.encode(tokens)
  np.testing.assert_allclose(mu, encoder.mu(side_by_side), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logvar, encoder.logvar(side_by_side), rtol=1e-5, atol=1e-6)
  grads = nnx.grad(lambda m: jnp.sum(m.encode(_tokens(2))[0] ** 2))(model)
  assert float(jnp.abs(grads.encoder.forward_layers[0].w_hh[...]).max()) > 0
  with pytest.raises(ValueError, match="windows of 2 bars, not 1"):
    model.encode(_tokens(1))
  with pytest.raises(ValueError, match="needs the window's number of bars"):
    MusAE(_model_config(encoder_bar_reader="concat"), num_genres=0, rngs=nnx.Rngs(0))
  # Checkpoints: runs saved before the field read with the biLSTM; another reader is refused.
  config = default.get_config()
  config.model.encoder = "hierarchical"
  assert_new_shape_field_resumes_old_runs_and_refuses_other_values(config, "encoder_bar_reader",
                                                                   "concat")
  config_checks.validate(config)
  config.model.encoder_summary_size = 64
  with pytest.raises(UserError, match="which encoder_bar_reader='concat' replaces"):
    config_checks.validate(config)
  config.model.update(encoder_summary_size=0, encoder="flat")
  with pytest.raises(UserError, match="the flat encoder has none"):
    config_checks.validate(config)
  config.model.update(encoder="hierarchical", encoder_bar_reader="attention")
  with pytest.raises(UserError, match="encoder_bar_reader='attention' is not one of"):
    config_checks.validate(config)
