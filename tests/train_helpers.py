"""Shared pieces of the training tests: a tiny config and reading a run's final parameters."""

import pathlib

import jax
import numpy as np

from configs import demo
from musae_jax import checkpointing
from musae_jax import default_config
from musae_jax import step as step_lib

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
