"""Shared pieces of the training tests: a tiny config and reading a run's final parameters."""

import pathlib

import jax
import numpy as np

from configs import demo
from musae_jax import checkpointing
from musae_jax import step as step_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_config(data_dir: str, **overrides):
  """The demo config shrunk so a run of a few dozen steps takes seconds on one core."""
  config = demo.get_config()
  config.data.data_dir = data_dir
  config.batch_size = 8
  config.num_train_steps = 12
  config.log_every_steps = 4
  config.eval_every_steps = 12
  config.num_eval_batches = 2
  config.checkpoint_every_steps = 4
  config.model.hidden_size = 16
  config.model.latent_size = 8
  config.model.critic_hidden_size = 16
  config.model.encoder_layers = 1
  config.model.decoder_layers = 1
  for dotted, value in overrides.items():
    node = config
    *parents, leaf = dotted.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


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
