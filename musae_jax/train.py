"""The training loop: data, sharded jitted step, metrics, validation, checkpoints, clean stops.

`train_and_evaluate(config, workdir)` is the whole program behind `python -m musae_jax.main`.
Running the same command again resumes from the newest complete checkpoint in workdir.
"""

import os
import signal
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from data_pipeline import build as data_build
from data_pipeline import loader
from data_pipeline.tokens import TRACKS
from musae_common.errors import UserError
from musae_jax import checkpointing
from musae_jax import config_checks
from musae_jax import lstm
from musae_jax import model as model_lib
from musae_jax import sharding
from musae_jax import step as step_lib
from musae_jax import training_health
from musae_jax.metric_writers import MetricWriter

class TrainingDiverged(UserError):
  """Loss or gradients became NaN/Inf."""


class _StopRequest:
  """Turns SIGTERM/SIGINT into a flag so the loop can finish its step and checkpoint."""

  def __init__(self):
    self.signal_name = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def ensure_dataset(config: ml_collections.ConfigDict) -> None:
  """Builds the configured TFDS dataset from config.data.midi_dir if it is not there yet."""
  data = config.data
  if loader.dataset_exists(data.data_dir, data.bars):
    return
  if jax.process_index() == 0:
    if not os.path.isdir(data.midi_dir):
      raise UserError(f"config.data.midi_dir={data.midi_dir!r} is not a folder, and the dataset "
                      f"is not built in config.data.data_dir={data.data_dir!r}.")
    logging.info("Building the %d-bar dataset from %s into %s.", data.bars, data.midi_dir,
                 data.data_dir)
    try:
      data_build.build_dataset(data.midi_dir, data.data_dir, data.bars,
                               genres_file=data.genres_file or None, workers=data.build_workers)
    except UserError as e:  # A bad folder, labels file or manifest, in one line.
      raise UserError(f"cannot build the dataset: {e}") from None
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices("dataset built")


def _split_state(state: step_lib.TrainState) -> tuple[Any, dict]:
  optimizer = {"step": state.step, "autoencoder": state.ae_opt_state,
               "critic": state.critic_opt_state}
  return state.params, optimizer


def _join_state(state: step_lib.TrainState, params: Any, optimizer: dict) -> step_lib.TrainState:
  return state.replace(step=optimizer["step"], params=params,
                       ae_opt_state=optimizer["autoencoder"],
                       critic_opt_state=optimizer["critic"])


def _first_nonfinite(history: list[dict[str, np.ndarray]], first_step: int) -> int | None:
  for i, metrics in enumerate(history):
    if not all(np.isfinite(v).all() for v in metrics.values()):
      return first_step + i
  return None


def validation_metrics(eval_step, params, config, mesh, per_process_batch: int) -> dict[str, float]:
  """Validation accuracy (MusAE's: every token) and note accuracy (pitch targets only)."""
  totals = None
  batches = loader.eval_batches(config.data.data_dir, config.data.bars, per_process_batch,
                                process_index=jax.process_index(),
                                process_count=jax.process_count(),
                                max_batches=config.num_eval_batches)
  for batch in batches:
    sums = eval_step(params, sharding.global_batch(batch, mesh))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  if totals is None:
    return {}
  totals = jax.device_get(totals)
  count = max(float(totals["count"]), 1.0)
  steps = max(float(totals["steps"]), 1.0)
  result = {"num_windows": float(totals["count"]),
            "loss/reconstruction": float(totals["loss/reconstruction"]) / count}
  for track in TRACKS:
    result[f"accuracy/{track}"] = float(totals[f"correct/{track}"]) / steps
    result[f"note_accuracy/{track}"] = (float(totals[f"note_correct/{track}"])
                                        / max(float(totals[f"note_total/{track}"]), 1.0))
  result["accuracy/mean"] = float(np.mean([result[f"accuracy/{t}"] for t in TRACKS]))
  result["note_accuracy/mean"] = float(np.mean([result[f"note_accuracy/{t}"] for t in TRACKS]))
  return result


def _progress(start: int, total: int) -> tqdm.tqdm:
  return tqdm.tqdm(initial=start, total=total, unit="step", dynamic_ncols=True,
                   disable=jax.process_index() != 0, mininterval=2.0)


def compute_dtype_notice(config: ml_collections.ConfigDict) -> str | None:
  """A line for the log when config.model.dtype=bfloat16 cannot pay on this machine's CPU."""
  model = config.model
  if (model.dtype != "bfloat16" or jax.default_backend() != "cpu" or
      lstm.bf16_pays(model.lstm_impl, model.hidden_size)):
    return None
  if lstm.runs_bf16_matmuls(model.lstm_impl, model.hidden_size):  # On the fused kernel, so loaded.
    from musae_jax import lstm_cpu  # pylint: disable=g-import-not-at-top
    return (f"config.model.dtype=bfloat16, but this CPU's bf16 dot instructions do "
            f"{lstm_cpu.BF16_DOT_SPEEDUP:.2f}x the multiply-adds a second of its float32 FMAs "
            "(without AMX tiles): bfloat16 is slower than float32 here (0.7x on an Intel Xeon "
            "without AMX), and less precise (--config.model.dtype=float32, or auto).")
  return ("config.model.dtype=bfloat16, but the LSTMs run no bf16 matmuls here (they need the "
          "fused CPU kernel on one device of a CPU with AVX512-BF16, and a hidden size that its "
          "vector width divides): bfloat16 is no faster than float32 here, only less precise "
          "(--config.model.dtype=float32).")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (or resumes training) the configured MusAE in workdir. Returns the final metrics."""
  config_checks.validate(config)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f"--workdir={workdir}: exists and is not a folder.")
  ensure_dataset(config)
  data = config.data
  genres = loader.genre_vocabulary(data.data_dir, data.bars)
  mesh = sharding.make_mesh()
  per_process_batch = sharding.per_process_batch_size(config.batch_size, mesh)
  logging.info("%d devices, %d processes; global batch %d, %d rows per process.",
               jax.device_count(), jax.process_count(), config.batch_size, per_process_batch)

  model_lib.apply_matmul_precision(config.model)
  logging.info("Matmuls in %s (config.model.dtype=%s).",
               jnp.dtype(model_lib.compute_dtype(config.model)).name, config.model.dtype)
  if notice := compute_dtype_notice(config):
    logging.warning(notice)

  graphdef, state = step_lib.create_train_state(config, len(genres))
  replicated = sharding.replicated(mesh)
  state = jax.device_put(state, replicated)
  checkpoints = checkpointing.Checkpointer(workdir, keep=config.keep_checkpoints)
  train_data = loader.train_iterator(data.data_dir, data.bars, per_process_batch,
                                     config.seed,
                                     transpose=(data.transpose_min, data.transpose_max),
                                     process_index=jax.process_index(),
                                     process_count=jax.process_count(),
                                     worker_count=data.loader_workers,
                                     song_fraction=data.train_song_fraction)

  if checkpoints.latest_step() is not None:
    latest = checkpoints.latest_step()
    checkpointing.check_compatible(checkpoints.saved_config(latest), config,
                                   f"The checkpoint in {checkpoints.directory}")
    params, optimizer = _split_state(state)
    restored = checkpoints.restore_latest_good(params, optimizer)
    if restored is not None:
      restored_step, params, optimizer, iterator_state = restored
      state = _join_state(state, params, optimizer)
      train_data.set_state(iterator_state)
      logging.info("Resumed from step %d in %s.", restored_step, checkpoints.directory)
  checkpointing.write_run_files(workdir, config, genres)

  batch_sharding = sharding.batch_sharding(mesh)
  train_step = jax.jit(step_lib.make_train_step(config, graphdef, len(genres)),
                       in_shardings=(replicated, batch_sharding),
                       out_shardings=(replicated, replicated), donate_argnums=0)
  eval_step = jax.jit(step_lib.make_eval_step(config, graphdef, len(genres)),
                      in_shardings=(replicated, batch_sharding), out_shardings=replicated)

  writer = MetricWriter(workdir)
  first_step = int(jax.device_get(state.step))
  health = training_health.TrainingHealth(config.health, first_step)
  last_saved = first_step
  history: list[dict[str, jax.Array]] = []
  history_start = first_step
  last_log_time, last_log_step = time.time(), first_step
  final_metrics: dict[str, Any] = {}

  def save(step: int) -> None:
    nonlocal last_saved
    params, optimizer = _split_state(state)
    checkpoints.save(step, params, optimizer, train_data.get_state(), config)
    last_saved = step

  def flush_history(step: int) -> dict[str, float]:
    """Fetches the metrics of the steps since the last flush; stops on the first NaN/Inf."""
    nonlocal history, history_start
    fetched = jax.device_get(history)
    bad_step = _first_nonfinite(fetched, history_start)
    if bad_step is not None:
      checkpoints.wait()
      good = checkpoints.latest_step()
      where = (f"the last good checkpoint is step {good} in {checkpoints.directory}"
               if good is not None else "no checkpoint was saved before it")
      raise TrainingDiverged(f"Training diverged: loss or gradients became NaN/Inf at step "
                             f"{bad_step + 1}; {where}.")
    history, history_start = [], step
    return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]} if fetched else {}

  # Host<->device traffic in the loop is explicit only (batches placed by sharding.global_batch,
  # metrics fetched with jax.device_get): an implicit transfer, e.g. a Python float() of a device
  # scalar that would stall every step, is an error, not a silent slowdown.
  with (_StopRequest() as stop, _progress(first_step, config.num_train_steps) as progress,
        jax.transfer_guard("disallow")):
    step = first_step
    input_seconds = 0.0  # Host time spent getting batches since the last log line.
    while step < config.num_train_steps:
      input_start = time.perf_counter()
      batch = sharding.global_batch(next(train_data), mesh)
      input_seconds += time.perf_counter() - input_start
      state, metrics = train_step(state, batch)
      history.append(metrics)
      step += 1
      progress.update(1)
      is_last = step == config.num_train_steps
      if step % config.log_every_steps == 0 or is_last:
        summary = flush_history(step)
        now = time.time()
        steps_per_s = (step - last_log_step) / max(now - last_log_time, 1e-9)
        # input_ms_per_step next to the step time shows whether the loader keeps up (steps run
        # asynchronously, so the device computes while the host fetches the next batch).
        summary.update(steps_per_s=steps_per_s,
                       examples_per_s=steps_per_s * config.batch_size,
                       input_ms_per_step=1e3 * input_seconds / max(step - last_log_step, 1))
        last_log_time, last_log_step, input_seconds = now, step, 0.0
        problems = health.check(step, summary)
        for flag, message in problems.items():
          logging.warning("Step %d: %s", step, message)
          summary[f"health/{flag}"] = 1.0
        writer.write(step, summary, prefix="train/")
        progress.set_postfix(reconstruction=f"{summary['loss/reconstruction']:.3f}",
                             acc=f"{np.mean([summary[f'accuracy/{t}'] for t in TRACKS]):.3f}")
        final_metrics.update({f"train/{k}": v for k, v in summary.items()})
      if step % config.eval_every_steps == 0 or is_last:
        flush_history(step)
        results = validation_metrics(eval_step, state.params, config, mesh, per_process_batch)
        if results:
          writer.write(step, results, prefix="validation/")
          logging.info("Step %d validation: %s", step, ", ".join(
              f"{k} {v:.4f}" for k, v in sorted(results.items()) if "accuracy" in k))
          final_metrics.update({f"validation/{k}": v for k, v in results.items()})
      if step % config.checkpoint_every_steps == 0 or is_last or stop.signal_name:
        flush_history(step)
        save(step)
      if stop.signal_name:
        checkpoints.close()
        writer.close()
        logging.info("Received %s: saved a checkpoint at step %d in %s; rerun the same command "
                     "to resume.", stop.signal_name, step, checkpoints.directory)
        print(f"Stopped by {stop.signal_name} at step {step}; checkpoint saved in "
              f"{checkpoints.directory}. Rerun the same command to resume.", flush=True)
        final_metrics["stopped_by"] = stop.signal_name
        return final_metrics
  if last_saved != step:
    save(step)
  checkpoints.close()
  writer.close()
  return final_metrics
