"""config.model.dropout and config.optim.weight_decay: what they change in training, and that
evaluation, the tools and runs without them compute what they always did."""

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from musae_common.errors import UserError
from musae_jax import checkpointing
from musae_jax import config_checks
from musae_jax import lstm
from musae_jax import model as model_lib
from musae_jax import step as step_lib
from tests import test_step


def test_dropout_zeroes_its_rate_and_keeps_the_mean():
  x = jnp.ones((200, 500), jnp.float32)
  dropped = np.asarray(model_lib.dropout(x, 0.3, jax.random.key(0)))
  assert abs(np.mean(dropped == 0) - 0.3) < 0.01
  np.testing.assert_allclose(dropped[dropped != 0], 1 / 0.7, rtol=1e-6)
  assert abs(dropped.mean() - 1.0) < 0.02
  # No key (evaluation) or no rate: x itself.
  assert model_lib.dropout(x, 0.3, None) is x
  assert model_lib.dropout(x, 0.0, jax.random.key(0)) is x


def _model(decoder, dropout):
  config = default.get_config().model
  config.update(hidden_size=12, latent_size=6, critic_hidden_size=10, encoder_layers=3,
                decoder_layers=3, residual=True, lstm_impl="reference", decoder=decoder,
                conductor_hidden_size=7, conductor_layers=2, dropout=dropout)
  return model_lib.MusAE(config, num_genres=0, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("decoder", ["flat", "hierarchical"])
def test_dropout_acts_in_training_only(decoder, monkeypatch):
  tokens = jnp.asarray(test_step.real_windows())
  plain, dropping = _model(decoder, 0.0), _model(decoder, 0.4)
  z = jax.random.normal(jax.random.key(1), (tokens.shape[0], 6))
  # Without a key (evaluation, every tool) a model with dropout is the model without it.
  for got, want in ((dropping.encode(tokens), plain.encode(tokens)),
                    (dropping.decode(z, 32), plain.decode(z, 32))):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(a, b)
  key_a, key_b = jax.random.key(2), jax.random.key(3)
  mu_a, _ = dropping.encode(tokens, key_a)
  assert np.abs(np.asarray(mu_a) - np.asarray(plain.encode(tokens)[0])).max() > 1e-4
  logits_a = np.asarray(dropping.decode(z, 32, key_a))
  assert np.abs(logits_a - np.asarray(dropping.decode(z, 32, key_b))).max() > 1e-3
  np.testing.assert_array_equal(logits_a, dropping.decode(z, 32, key_a))  # Seeded by its key.
  # Accelerators vmap the four decoders: the same masks, so the same logits.
  monkeypatch.setattr(lstm, "batches_well", lambda: True)
  np.testing.assert_allclose(dropping.decode(z, 32, key_a), logits_a, rtol=1e-5, atol=1e-6)


def _train(config, steps=3):
  graphdef, state = step_lib.create_train_state(config, 0)
  train_step = jax.jit(step_lib.make_train_step(config, graphdef, 0))
  data = test_step.batch(0)
  for _ in range(steps):
    state, metrics = train_step(state, data)
  return state, metrics


def test_training_with_dropout_and_weight_decay_learns_and_without_them_is_unchanged():
  base = test_step.tiny_config()
  regularised = test_step.tiny_config(**{"model.dropout": 0.2, "optim.weight_decay": 0.1,
                                         "optim.learning_rate": 1e-2,
                                         "optim.clip_global_norm": 1.0})
  state, metrics = _train(regularised, steps=30)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  _, first = _train(regularised, steps=1)
  assert float(metrics["loss/reconstruction"]) < 0.8 * float(first["loss/reconstruction"])
  base_state, _ = _train(base)
  # A config whose fields say "none" is the config without them (runs saved before they existed).
  old_style = test_step.tiny_config()
  del old_style.model["dropout"], old_style.optim["weight_decay"]
  old_state, _ = _train(old_style)
  for a, b in zip(jax.tree.leaves(old_state), jax.tree.leaves(base_state)):
    np.testing.assert_array_equal(a, b)
  assert jax.tree.structure(state) != jax.tree.structure(base_state)  # AdamW keeps a mask.


def test_weight_decay_shrinks_weight_matrices_not_biases():
  optim = default.get_config().optim
  optimizer = step_lib.make_optimizer(optim, weight_decay=0.5)
  params = {"kernel": jnp.full((3, 4), 2.0), "bias": jnp.full((4,), 2.0)}
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = optimizer.update(zero_grads, optimizer.init(params), params)
  # Adam's step of a zero gradient is zero: what is left is -lr * decay * weight.
  np.testing.assert_allclose(updates["kernel"], -optim.learning_rate * 0.5 * 2.0, rtol=1e-6)
  np.testing.assert_array_equal(updates["bias"], 0.0)


def test_switching_weight_decay_on_a_checkpoint_is_refused_and_bad_values_named():
  config = default.get_config()
  saved = checkpointing.config_to_dict(config)
  del saved["optim"]["weight_decay"]  # A run saved before the field existed: Adam.
  checkpointing.check_compatible(saved, config, "run")
  config.optim.weight_decay = 0.01
  with pytest.raises(UserError, match=r"optim.weight_decay: checkpoint 0.0 vs config 0.01"):
    checkpointing.check_compatible(saved, config, "run")
  decayed = checkpointing.config_to_dict(config)
  config.optim.weight_decay = 0.05  # Another value of a decay that is on: resumable.
  checkpointing.check_compatible(decayed, config, "run")
  for field, value, message in (("model.dropout", 1.0, r"must be in \[0, 1\)"),
                                ("optim.weight_decay", -0.1, "must be >= 0")):
    bad = default.get_config()
    section, name = field.split(".")
    bad[section][name] = value
    with pytest.raises(UserError, match=message):
      config_checks.validate(bad)
