"""Shared pieces of the training tests: a tiny config, reading a run's final parameters, and a
reconstruction loss with its gradients for the model tests."""

import pathlib

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from configs import demo
from musae_jax import checkpointing
from musae_jax import default_config
from musae_jax import step as step_lib
from musae_jax.model import MusAE

REPO = pathlib.Path(__file__).resolve().parents[1]


# A model and schedule small enough that a run of a few dozen steps takes seconds on one core.
TINY = {"batch_size": 8, "num_train_steps": 12, "log_every_steps": 4, "eval_every_steps": 12,
        "num_eval_batches": 2, "checkpoint_every_steps": 4, "model.hidden_size": 16,
        "model.latent_size": 8, "model.critic_hidden_size": 16, "model.encoder_layers": 1,
        "model.decoder_layers": 1}


def tiny_config(data_dir: str, **overrides):
  """The demo config made TINY; overrides name fields by dotted path ({"model.prior": ...})."""
  config = demo.get_config()
  config.data.data_dir = data_dir
  return default_config.override(config, {**TINY, **overrides})


def final_params(workdir, config, num_genres):
  """The parameters of the newest checkpoint in workdir, as numpy arrays."""
  state = jax.eval_shape(lambda: step_lib.create_train_state(config, num_genres)[1])
  checkpoints = checkpointing.Checkpointer(str(workdir))
  params = checkpoints.restore_params(checkpoints.latest_step(), state.params)
  checkpoints.close()
  return jax.tree.map(np.asarray, params)


def assert_trees_equal(a, b, rtol=0.0, atol=0.0):
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b):
    if rtol == 0.0 and atol == 0.0:
      np.testing.assert_array_equal(x, y)
    else:
      np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def reconstruction_loss_and_grads(model_config, tokens):
  """The mean token cross-entropy of decoding mu + sigma (one fixed draw) and its gradients with
  respect to every parameter, for a model built from model_config with seed 0 (jitted)."""
  model = MusAE(model_config, num_genres=0, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)

  def loss(params):
    model = nnx.merge(graphdef, params)
    mu, logvar = model.encode(tokens)
    logits = model.decode(mu + jnp.exp(0.5 * logvar), tokens.shape[1])
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits),
                                         tokens.astype(jnp.int32)[..., None], -1))

  return jax.jit(jax.value_and_grad(loss))(params)


def assert_loss_and_grads_close(got, want, value_rtol: float, grad_rtol: float):
  """got, want: (loss, gradients) from reconstruction_loss_and_grads of two models."""
  np.testing.assert_allclose(got[0], want[0], rtol=value_rtol)
  for got_grad, want_grad in zip(jax.tree.leaves(got[1]), jax.tree.leaves(want[1])):
    np.testing.assert_allclose(got_grad, want_grad, rtol=grad_rtol, atol=1e-6)


def assert_new_shape_field_resumes_old_runs_and_refuses_other_values(config, field: str,
                                                                     value) -> None:
  """config.model.<field> fixes parameter shapes: a checkpoint saved before the field existed
  resumes under config's (default) value, and under `value` it is refused with the field named."""
  import pytest  # pylint: disable=g-import-not-at-top
  from musae_common.errors import UserError  # pylint: disable=g-import-not-at-top
  saved = checkpointing.config_to_dict(config)
  default = saved["model"].pop(field)
  checkpointing.check_compatible(saved, config, "run")
  config.model[field] = value
  with pytest.raises(UserError, match=f"model.{field}: checkpoint {default!r} vs config {value!r}"):
    checkpointing.check_compatible(saved, config, "run")
