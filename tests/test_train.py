"""The training program end to end on the demo songs: outputs, resume, signals, NaN guard, errors."""

import importlib
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipeline import loader
from musae_common.errors import UserError
from musae_jax import config_checks
from musae_jax import sharding
from musae_jax import step as step_lib
from musae_jax import train
from tests import train_helpers
from tests.train_helpers import REPO


def _num_genres(data_dir):
  return len(loader.genre_vocabulary(data_dir, 2))


def test_run_writes_checkpoints_config_metrics_and_events(demo_data_dir, tmp_path):
  config = train_helpers.tiny_config(demo_data_dir)
  metrics = train.train_and_evaluate(config, str(tmp_path))
  assert sorted(int(s) for s in os.listdir(tmp_path / "checkpoints")) == [4, 8, 12]
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["model"]["hidden_size"] == 16 and saved["data"]["bars"] == 2
  assert json.loads((tmp_path / "genres.json").read_text()) == loader.genre_vocabulary(
      demo_data_dir, 2)
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train_steps = [l["step"] for l in lines if "train/loss/total" in l]
  assert train_steps == [4, 8, 12]
  timing = [l for l in lines if "train/steps_per_s" in l]
  assert len(timing) == 3 and all(
      l["train/steps_per_s"] > 0 and l["train/input_ms_per_step"] > 0 for l in timing)
  assert any("validation/accuracy/drums" in l for l in lines)
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))
  assert 0.0 <= metrics["validation/accuracy/mean"] <= 1.0


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(demo_data_dir, tmp_path):
  config = train_helpers.tiny_config(demo_data_dir)
  train.train_and_evaluate(config, str(tmp_path / "straight"))
  config.num_train_steps = 6  # Stops between checkpoints: resumes from step 6's final save.
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  config.num_train_steps = 12
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  genres = _num_genres(demo_data_dir)
  train_helpers.assert_trees_equal(
      train_helpers.final_params(tmp_path / "straight", config, genres),
      train_helpers.final_params(tmp_path / "resumed", config, genres))


def test_resume_skips_a_damaged_checkpoint(demo_data_dir, tmp_path, caplog):
  config = train_helpers.tiny_config(demo_data_dir)
  train.train_and_evaluate(config, str(tmp_path / "straight"))
  config.num_train_steps = 8  # Checkpoints at 4 and 8.
  train.train_and_evaluate(config, str(tmp_path / "damaged"))
  for path in (tmp_path / "damaged" / "checkpoints" / "8" / "params").rglob("*"):
    if path.is_file() and path.stat().st_size > 100:
      path.write_bytes(path.read_bytes()[:100])  # Cut, as by a full disk.
  config.num_train_steps = 12
  train.train_and_evaluate(config, str(tmp_path / "damaged"))  # Resumes from step 4.
  assert "Checkpoint 8 in" in caplog.text and "cannot be read" in caplog.text
  genres = _num_genres(demo_data_dir)
  train_helpers.assert_trees_equal(
      train_helpers.final_params(tmp_path / "straight", config, genres),
      train_helpers.final_params(tmp_path / "damaged", config, genres))


def _step_that_diverges_at(nan_step: int):
  """make_train_step whose step nan_step makes the parameters and metrics NaN, as a divergence
  would (the production step is wrapped, not changed)."""
  make_real_step = step_lib.make_train_step

  def make_train_step(config, graphdef, num_genres):
    real_step = make_real_step(config, graphdef, num_genres)

    def train_step(state, batch):
      new_state, metrics = real_step(state, batch)
      poison = jnp.where(state.step == nan_step, jnp.nan, 0.0)
      params = jax.tree.map(lambda p: p + poison.astype(p.dtype), new_state.params)
      return (new_state.replace(params=params),
              {name: value + poison for name, value in metrics.items()})
    return train_step
  return make_train_step


def test_nan_stops_training_and_keeps_last_checkpoint(demo_data_dir, tmp_path, monkeypatch):
  monkeypatch.setattr(step_lib, "make_train_step", _step_that_diverges_at(9))
  config = train_helpers.tiny_config(demo_data_dir)
  with pytest.raises(train.TrainingDiverged, match=r"at step 10; the last good checkpoint is step 8"):
    train.train_and_evaluate(config, str(tmp_path))
  assert sorted(int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit()) == [4, 8]
  params = train_helpers.final_params(tmp_path, config, _num_genres(demo_data_dir))
  assert all(np.isfinite(p).all() for p in jax.tree.leaves(params))


def test_mismatched_model_shape_is_a_clear_error(demo_data_dir, tmp_path):
  train.train_and_evaluate(train_helpers.tiny_config(demo_data_dir, num_train_steps=4),
                           str(tmp_path))
  config = train_helpers.tiny_config(demo_data_dir, **{"model.hidden_size": 24})
  with pytest.raises(UserError, match=r"model.hidden_size: checkpoint 16 vs config 24"):
    train.train_and_evaluate(config, str(tmp_path))


@pytest.mark.parametrize("case", ["missing file", "no get_config", "misspelled override",
                                  "unknown prior", "unknown lstm_impl", "workdir is a file"])
def test_bad_config_is_one_line_without_traceback(case, tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  # A finished run's config: a bad config must be refused before it is overwritten.
  (workdir / "config.json").write_text('{"name": "earlier"}')
  config, args, expected = "configs/demo.py", [], None
  if case == "missing file":
    config, expected = str(tmp_path / "nowhere.py"), "nowhere.py: no such file."
  elif case == "no get_config":
    (tmp_path / "other.py").write_text("x = 1\n")
    config, expected = str(tmp_path / "other.py"), "other.py: the file defines no get_config()."
  elif case == "misspelled override":
    args = ["--config.model.hiden_size=64"]
    expected = "override names no field 'hiden_size' (did you mean 'hidden_size'?)"
  elif case == "unknown prior":
    args, expected = ["--config.model.prior=uniform"], "config.model.prior='uniform' is not one of"
  elif case == "unknown lstm_impl":
    args, expected = ["--config.model.lstm_impl=fast"], "Unknown LSTM implementation 'fast'"
  else:
    workdir = tmp_path / "a_file"
    workdir.write_text("")
    expected = "a_file: exists and is not a folder."
  result = subprocess.run(
      [sys.executable, "-m", "musae_jax.main", f"--config={config}", f"--workdir={workdir}",
       *args], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and expected in errors[0], result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  if workdir.is_dir():
    assert sorted(os.listdir(workdir)) == ["config.json"]
    assert (workdir / "config.json").read_text() == '{"name": "earlier"}'


def _main_command(data_dir, workdir, *overrides):
  config = train_helpers.tiny_config(data_dir)
  fields = {"batch_size": config.batch_size, "model.hidden_size": 16, "model.latent_size": 8,
            "model.critic_hidden_size": 16, "model.encoder_layers": 1,
            "model.decoder_layers": 1, "data.data_dir": data_dir, "num_eval_batches": 2,
            "log_every_steps": 4, "checkpoint_every_steps": 4}
  args = [f"--config.{k}={v}" for k, v in fields.items()] + list(overrides)
  return [sys.executable, "-m", "musae_jax.main", "--config=configs/demo.py",
          f"--workdir={workdir}", *args]


def _wait_for_checkpoint(workdir, process, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    ckpt = workdir / "checkpoints"
    if ckpt.is_dir() and any(s.isdigit() for s in os.listdir(ckpt)):
      return
    assert process.poll() is None, process.communicate()[1][-3000:]
    time.sleep(0.2)
  raise AssertionError("no checkpoint appeared")


def test_sigterm_saves_a_checkpoint_and_exits_zero(demo_data_dir, tmp_path):
  process = subprocess.Popen(_main_command(demo_data_dir, tmp_path,
                                           "--config.num_train_steps=100000",
                                           "--config.eval_every_steps=100000"),
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _wait_for_checkpoint(tmp_path, process)
  process.send_signal(signal.SIGTERM)
  out, err = process.communicate(timeout=120)
  assert process.returncode == 0, err[-3000:]
  assert "Stopped by SIGTERM at step" in out
  stopped_at = int(out.split("Stopped by SIGTERM at step ")[1].split(";")[0])
  assert (tmp_path / "checkpoints" / str(stopped_at)).is_dir()


def test_sigkill_then_restart_equals_an_uninterrupted_run(demo_data_dir, tmp_path):
  """Also the end-to-end run of `python -m musae_jax.main` as a user starts it."""
  steps = "--config.num_train_steps=24"
  straight = subprocess.run(_main_command(demo_data_dir, tmp_path / "straight", steps,
                                          "--config.eval_every_steps=24"),
                            cwd=REPO, capture_output=True, text=True, timeout=300)
  assert straight.returncode == 0, straight.stderr[-3000:]
  assert (tmp_path / "straight" / "checkpoints" / "24").is_dir()
  assert "validation/accuracy/drums" in (tmp_path / "straight" / "metrics.jsonl").read_text()
  killed_dir = tmp_path / "killed"
  process = subprocess.Popen(_main_command(demo_data_dir, killed_dir, steps,
                                           "--config.eval_every_steps=1000"),
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  _wait_for_checkpoint(killed_dir, process)
  process.kill()
  process.wait()
  restarted = subprocess.run(_main_command(demo_data_dir, killed_dir, steps,
                                           "--config.eval_every_steps=1000"),
                             cwd=REPO, capture_output=True, text=True, timeout=300)
  assert restarted.returncode == 0, restarted.stderr[-3000:]
  config = train_helpers.tiny_config(demo_data_dir)
  genres = _num_genres(demo_data_dir)
  train_helpers.assert_trees_equal(train_helpers.final_params(tmp_path / "straight", config, genres),
                                   train_helpers.final_params(killed_dir, config, genres))


def test_training_loop_allows_no_implicit_transfer(demo_data_dir, tmp_path, monkeypatch):
  # Batches handed to the step as numpy arrays (not placed with sharding.global_batch) would be
  # copied to the device implicitly at every step: the loop's transfer guard refuses them.
  monkeypatch.setattr(sharding, "global_batch", lambda batch, mesh: batch)
  with pytest.raises(Exception, match=r"[Dd]isallowed host-to-device transfer"):
    train.train_and_evaluate(train_helpers.tiny_config(demo_data_dir), str(tmp_path))


@pytest.mark.parametrize("path", sorted(p for p in (REPO / "configs").glob("*.py")
                                        if p.name != "__init__.py"), ids=lambda p: p.name)
def test_every_shipped_config_validates_and_names_its_run_after_its_file(path):
  module = importlib.import_module(f"configs.{path.stem}")
  config = module.get_config()
  config_checks.validate(config)
  # The run lands in runs/<name>: a copied config that keeps its parent's name would train into
  # (and resume from) the parent's folder.
  if path.stem != "default":
    assert config.name == path.stem
    assert f"--config=configs/{path.name}" in module.__doc__  # The command that trains it.


def test_bfloat16_where_bf16_matmuls_do_not_pay_says_float32_is_faster(monkeypatch):
  from musae_jax import lstm_cpu  # pylint: disable=g-import-not-at-top
  if not lstm_cpu.AVAILABLE:
    pytest.skip("the fused CPU LSTM kernel is not built")
  config = train_helpers.tiny_config("unused")
  assert train.compute_dtype_notice(config) is None  # float32
  config.model.dtype = "bfloat16"
  monkeypatch.setattr(lstm_cpu, "BF16_MATMULS", False)
  monkeypatch.setattr(lstm_cpu, "BF16_PAYS", False)
  assert "no faster than float32" in train.compute_dtype_notice(config)
  monkeypatch.setattr(lstm_cpu, "BF16_MATMULS", True)
  monkeypatch.setattr(lstm_cpu, "BF16_PAYS", True)
  assert train.compute_dtype_notice(config) is None
  # bf16 dot instructions slower than the float32 FMAs (an Intel Xeon without AMX tiles).
  monkeypatch.setattr(lstm_cpu, "BF16_PAYS", False)
  monkeypatch.setattr(lstm_cpu, "BF16_DOT_SPEEDUP", 0.5)
  assert "0.50x the multiply-adds a second" in train.compute_dtype_notice(config)
  assert "slower than float32" in train.compute_dtype_notice(config)
  monkeypatch.setattr(lstm_cpu, "BF16_PAYS", True)
  config.model.lstm_impl = "scan"  # bf16 matmuls in XLA's loop: slower than float32 fused.
  assert "no faster than float32" in train.compute_dtype_notice(config)
