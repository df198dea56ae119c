"""The train and eval steps: learning on real windows, determinism, schedules, sharding."""

import functools
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from data_pipeline import song
from data_pipeline.tokens import TRACKS
from musae_jax import default_config
from musae_jax import step as step_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
MIDI = REPO / "demo_data" / "midi" / "miditok"
# Demo songs that pass the MusAE filter; two windows of each.
SONGS = ("Aicha", "Girls_Just_Want_to_Have_Fun", "Shut_Up", "What_a_Fool_Believes")


@functools.cache
def real_windows() -> np.ndarray:
  """uint8 [8, 32, 4]: 2-bar windows of four real songs."""
  return np.concatenate([song.extract_windows(str(MIDI / f"{name}.mid"), 2).tokens[[0, 5]]
                         for name in SONGS])


def tiny_config(**overrides):
  return default_config.override(default.get_config(), {
      "model.hidden_size": 16, "model.latent_size": 8, "model.critic_hidden_size": 16,
      "model.encoder_layers": 2, "model.decoder_layers": 2, **overrides})


def batch(num_genres=0, tokens=None):
  tokens = real_windows() if tokens is None else tokens
  genres = np.zeros((len(tokens), num_genres), np.float32)
  for row in range(len(tokens)):  # Some windows have 1 or 2 tags, some none.
    genres[row, [g for g in range(num_genres) if (row + g) % 3 == 0]] = 1.0
  return {"tokens": tokens, "genres": genres}


# One configuration for most tests, so its step compiles once per test process: flower prior
# (3 genres), 2 critic updates per step, beta rising every 100 steps.
SHARED_GENRES = 3


def shared_config():
  return tiny_config(**{"model.prior": "flower", "optim.critic_steps": 2,
                        "optim.beta_every_steps": 100})


@functools.cache
def shared_steps():
  """(graphdef, initial state, jitted train step, jitted eval step) of shared_config()."""
  config = shared_config()
  graphdef, state = step_lib.create_train_state(config, SHARED_GENRES)
  train_step = jax.jit(step_lib.make_train_step(config, graphdef, SHARED_GENRES))
  eval_step = jax.jit(step_lib.make_eval_step(config, graphdef, SHARED_GENRES))
  return graphdef, state, train_step, eval_step


def run_shared(num_steps, first_step=0):
  """A fresh state of shared_config() (created anew, as a second run would) trained num_steps."""
  _, _, train_step, _ = shared_steps()
  _, state = step_lib.create_train_state(shared_config(), SHARED_GENRES)
  state = state.replace(step=jnp.asarray(first_step, jnp.int32))
  data = batch(SHARED_GENRES)
  metrics = []
  for _ in range(num_steps):
    state, m = train_step(state, data)
    metrics.append(m)
  return state, metrics


def test_tiny_model_overfits_real_windows():
  config = tiny_config(**{
      "model.hidden_size": 128, "model.latent_size": 32, "model.critic_hidden_size": 32,
      "model.encoder_layers": 1, "model.decoder_layers": 1, "optim.learning_rate": 1e-2,
      "optim.lr_schedule": "exponential", "optim.lr_decay": 1e-3,
      "optim.clip_global_norm": 1.0})
  graphdef, state = step_lib.create_train_state(config, 0)
  train_step = jax.jit(step_lib.make_train_step(config, graphdef, 0))
  eval_step = jax.jit(step_lib.make_eval_step(config, graphdef, 0))
  data = batch()
  eval_data = dict(data, mask=np.ones(len(data["tokens"]), np.float32))
  history = []
  for step in range(1, 1201):
    state, _ = train_step(state, data)
    if step % 50 == 0:
      sums = eval_step(state.params, eval_data)
      accuracy = [float(sums[f"correct/{t}"] / sums["steps"]) for t in TRACKS]
      history.append((step, accuracy))
      if min(accuracy) >= 0.95:
        break
  assert min(history[-1][1]) >= 0.95, history  # Typically reached after 700-1000 steps.
  assert min(history[0][1]) < 0.9, history  # It did have to learn.


def test_same_seed_gives_bitwise_identical_parameters():
  state_a, metrics_a = run_shared(3)
  state_b, metrics_b = run_shared(3)
  for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(metrics_a, metrics_b):
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
  # The seed matters: another seed starts elsewhere.
  _, other = step_lib.create_train_state(tiny_config(seed=1), 0)
  _, state = step_lib.create_train_state(tiny_config(), 0)
  assert not np.array_equal(other.params["critic_net"]["score"]["kernel"][...],
                            state.params["critic_net"]["score"]["kernel"][...])


def test_step_updates_both_optimizers_and_keeps_the_state_layout():
  _, initial, train_step, _ = shared_steps()
  state, metrics = train_step(initial, batch(SHARED_GENRES))
  assert jax.tree.structure(state) == jax.tree.structure(initial)
  assert all(a.dtype == b.dtype and a.shape == b.shape
             for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(initial)))
  assert int(state.step) == 1
  old_ae, old_critic = step_lib.split_params(initial.params)
  new_ae, new_critic = step_lib.split_params(state.params)
  # The critic's output bias cancels out of E[critic(fake)] - E[critic(real)] and the penalty,
  # so it gets no gradient; every other parameter moves.
  for old, new in ((old_ae, new_ae), (old_critic, new_critic)):
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(old), jax.tree.leaves(new)):
      name = jax.tree_util.keystr(path)
      assert np.array_equal(a, b) == ("'score'" in name and "'bias'" in name), name
  # The critic's Adam counted 2 updates, the autoencoder's 1.
  counts = [int(x) for x in jax.tree.leaves(state.critic_opt_state) if x.dtype == jnp.int32]
  assert counts and set(counts) == {2}
  counts = [int(x) for x in jax.tree.leaves(state.ae_opt_state) if x.dtype == jnp.int32]
  assert counts and set(counts) == {1}

  expected = {"loss/total", "loss/reconstruction", "loss/critic", "loss/gradient_penalty",
              "loss/adversarial", "beta", "learning_rate", "grad_norm/autoencoder",
              "grad_norm/critic"}
  expected |= {f"loss/reconstruction/{t}" for t in TRACKS} | {f"accuracy/{t}" for t in TRACKS}
  assert set(metrics) == expected
  assert all(v.shape == () and v.dtype == jnp.float32 for v in metrics.values())
  per_track = sum(float(metrics[f"loss/reconstruction/{t}"]) for t in TRACKS)
  np.testing.assert_allclose(float(metrics["loss/reconstruction"]), per_track, rtol=1e-6)
  # beta = 0 at step 0, so the total is the reconstruction loss.
  np.testing.assert_allclose(float(metrics["loss/total"]), per_track, rtol=1e-6)
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_beta_and_learning_rate_schedules():
  optim = default.get_config().optim
  optim.lr_schedule = "exponential"
  beta = step_lib.beta_schedule(optim)
  np.testing.assert_allclose([float(beta(s)) for s in (0, 9_999, 10_000, 25_000, 95_000, 10**6)],
                             [0.0, 0.0, 0.1, 0.2, 0.9, 1.0], rtol=1e-6)
  lr = step_lib.learning_rate_schedule(optim)
  np.testing.assert_allclose(float(lr(0)), 1e-4, rtol=1e-6)
  np.testing.assert_allclose(float(lr(5_000)), 1e-4 * (1 - 1e-4) ** 5_000, rtol=1e-4)
  optim.lr_schedule = "inverse_time"
  np.testing.assert_allclose(float(step_lib.learning_rate_schedule(optim)(5_000)), 1e-4 / 1.5,
                             rtol=1e-6)
  optim.lr_schedule = "cosine"
  with pytest.raises(ValueError, match="config.optim.lr_schedule='cosine'"):
    step_lib.learning_rate_schedule(optim)


def test_step_reports_the_schedules_at_its_own_step():
  _, [metrics] = run_shared(1, first_step=250)
  np.testing.assert_allclose(float(metrics["beta"]), 0.2, rtol=1e-6)
  np.testing.assert_allclose(float(metrics["learning_rate"]), 1e-4 / (1 + 1e-4 * 250), rtol=1e-5)
  expected = float(metrics["loss/reconstruction"]) + 0.2 * float(metrics["loss/adversarial"])
  np.testing.assert_allclose(float(metrics["loss/total"]), expected, rtol=1e-5)


def test_clipping_bounds_the_update():
  config = tiny_config(**{"optim.clip_global_norm": 1e-3, "optim.learning_rate": 1.0,
                          "optim.lr_decay": 0.0})
  optimizer = step_lib.make_optimizer(config.optim)
  params = {"w": jnp.zeros(3)}
  grads = {"w": jnp.array([300.0, 400.0, 0.0])}
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  # Adam's first update has magnitude lr per coordinate whatever the scale; with clipping the
  # direction is kept and zero gradients stay zero.
  np.testing.assert_allclose(updates["w"], [-1.0, -1.0, 0.0], atol=1e-3)


def test_eval_step_sums_only_real_windows():
  _, state, _, eval_step = shared_steps()
  tokens = real_windows()
  full = eval_step(state.params, {"tokens": tokens, "mask": np.ones(8, np.float32)})
  half = eval_step(state.params, {"tokens": tokens[:4], "mask": np.ones(4, np.float32)})
  padded = np.concatenate([tokens[:4], tokens[4:]])
  masked = eval_step(state.params, {"tokens": padded,
                                    "mask": np.array([1, 1, 1, 1, 0, 0, 0, 0], np.float32)})
  for name in full:
    np.testing.assert_allclose(masked[name], half[name], rtol=1e-5)
  assert float(full["count"]) == 8 and float(full["steps"]) == 8 * 32
  notes = (tokens < 128).sum(axis=(0, 1))
  for i, track in enumerate(TRACKS):
    assert float(full[f"note_total/{track}"]) == notes[i]
    assert 0 <= float(full[f"note_correct/{track}"]) <= float(full[f"correct/{track}"]) <= 256
  # z = mu: the same windows give the same sums whatever the step RNG would be.
  again = eval_step(state.params, {"tokens": tokens, "mask": np.ones(8, np.float32)})
  assert all(np.array_equal(full[k], again[k]) for k in full)


_SHARDED_SCRIPT = textwrap.dedent("""
    import sys
    import jax, numpy as np
    from musae_jax import sharding, step as step_lib
    from tests import test_step as t
    assert jax.device_count() == 4, jax.devices()
    expected = np.load(sys.argv[1])
    config = t.shared_config()
    graphdef, state = step_lib.create_train_state(config, t.SHARED_GENRES)
    mesh = sharding.make_mesh()
    replicated, rows = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    train_step = jax.jit(step_lib.make_train_step(config, graphdef, t.SHARED_GENRES),
                         in_shardings=(replicated, rows), out_shardings=(replicated, replicated),
                         donate_argnums=0)
    state = jax.device_put(state, replicated)
    data = jax.device_put(t.batch(t.SHARED_GENRES), rows)
    for i in range(3):
      state, metrics = train_step(state, data)
      for k, v in metrics.items():
        np.testing.assert_allclose(v, expected[f"{i}:{k}"], rtol=2e-4, atol=1e-5, err_msg=k)
    for i, leaf in enumerate(jax.tree.leaves(state)):
      np.testing.assert_allclose(leaf, expected[f"leaf{i}"], rtol=2e-4, atol=1e-5)
    print("sharded == single")
""")


def test_step_sharded_over_four_devices_matches_one_device(tmp_path):
  state, metrics = run_shared(3)
  expected = {f"leaf{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}
  expected.update({f"{i}:{k}": np.asarray(v) for i, m in enumerate(metrics) for k, v in m.items()})
  np.savez(tmp_path / "single.npz", **expected)
  # The device count is fixed when JAX starts, so the 4-device run needs its own process.
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  result = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT, str(tmp_path / "single.npz")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "sharded == single" in result.stdout
