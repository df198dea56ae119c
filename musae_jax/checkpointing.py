"""Orbax checkpoints of a run: parameters, optimizer state, data position, and the config beside.

Layout of a workdir:
  config.json             the run's config (also stored inside every checkpoint)
  genres.json             the dataset's genre vocabulary (prior components, in order)
  checkpoints/<step>/     params | optimizer | data_iterator | config  (orbax items)

Parameters and optimizer state are separate items so inference restores parameters alone. The
per-step RNG is derived from (config.seed, step), so no RNG state needs saving.
"""

import json
import os
from typing import Any, Callable, Iterable

from absl import logging
import jax
import ml_collections
import orbax.checkpoint as ocp

from musae_common.errors import UserError

# What orbax raises on a checkpoint whose files are cut or corrupt.
DAMAGED_CHECKPOINT_ERRORS = (ValueError, OSError, KeyError)


def damage_summary(error: Exception) -> str:
  """One line for a DAMAGED_CHECKPOINT_ERRORS error (orbax's messages run to hundreds of lines)."""
  lines = str(error).strip().splitlines()
  return lines[0][:300] if lines else type(error).__name__


# Config fields a checkpoint cannot be resumed under other values of: those that fix parameter
# shapes, and the training songs (the data iterator's saved state is a position among their
# windows; on other songs it would go on elsewhere, and the saved config would misstate the run).
SHAPE_FIELDS = ("data.bars", "model.hidden_size", "model.latent_size", "model.encoder_layers",
                "model.decoder_layers", "model.critic_hidden_size", "model.prior",
                "model.decoder", "model.conductor_hidden_size", "model.conductor_layers",
                "model.encoder", "model.step_position", "model.encoder_summary_size",
                "model.encoder_bar_reader", "model.conductor", "data.train_song_fraction")
# What a run saved before a field existed was trained with (a flat decoder has no conductor).
_SAVED_BEFORE_THE_FIELD = {"model.decoder": "flat", "model.encoder": "flat",
                           "model.step_position": False, "model.encoder_summary_size": 0,
                           "model.encoder_bar_reader": "lstm", "model.conductor": "lstm",
                           "data.train_song_fraction": 1.0}


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


def write_run_files(workdir: str, config: ml_collections.ConfigDict, genres: list[str]) -> None:
  """Writes config.json and genres.json into the workdir (process 0 only)."""
  if jax.process_index() != 0:
    return
  os.makedirs(workdir, exist_ok=True)
  _write_json_atomically(os.path.join(workdir, "config.json"), config_to_dict(config), indent=2,
                         sort_keys=True)
  _write_json_atomically(os.path.join(workdir, "genres.json"), list(genres), indent=1)


def _write_json_atomically(path: str, value: Any, **dump_args) -> None:
  """A run killed while writing leaves the old file or the new one, never half of one (the tools
  read these files to load the run)."""
  partial = path + ".partial"
  with open(partial, "w", encoding="utf-8") as f:
    json.dump(value, f, **dump_args)
  os.replace(partial, path)


def _read_json(path: str) -> Any:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise UserError(f"{path}: not valid JSON ({e.msg}, line {e.lineno} column {e.colno}); was "
                    "it edited by hand?") from None
  except (OSError, UnicodeDecodeError) as e:
    raise UserError(f"{path}: cannot be read ({e}).") from None


def read_run_config(workdir: str) -> ml_collections.ConfigDict:
  if not os.path.isdir(workdir):
    raise UserError(f"{workdir}: no such folder (a training run's --workdir).")
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise UserError(f"{workdir}: no config.json; is this a musae-jax training run directory?")
  config = _read_json(path)
  if not isinstance(config, dict):
    raise UserError(f"{path}: not a run's config (a JSON object was expected).")
  return ml_collections.ConfigDict(config)


def read_run_genres(workdir: str) -> list[str]:
  path = os.path.join(workdir, "genres.json")
  if not os.path.exists(path):
    return []
  genres = _read_json(path)
  if not (isinstance(genres, list) and all(isinstance(g, str) for g in genres)):
    raise UserError(f"{path}: not a list of genre names.")
  return genres


def _field(config: dict, dotted: str) -> Any:
  value = config
  for part in dotted.split("."):
    value = value.get(part) if isinstance(value, dict) else None
  return value


def check_compatible(saved: dict, config: ml_collections.ConfigDict, where: str) -> None:
  """Raises a UserError naming every shape-defining field that differs from the checkpoint's."""
  current = config_to_dict(config)

  def saved_value(name):
    value = _field(saved, name)
    return _SAVED_BEFORE_THE_FIELD.get(name) if value is None else value

  both_hierarchical = saved_value("model.decoder") == _field(current, "model.decoder") == (
      "hierarchical")
  # The conductor's fields shape nothing unless both decoders have a conductor.
  names = [name for name in SHAPE_FIELDS
           if both_hierarchical or not name.startswith("model.conductor")]
  diffs = [f"{name}: checkpoint {saved_value(name)!r} vs config {_field(current, name)!r}"
           for name in names if saved_value(name) != _field(current, name)]
  # Adam and AdamW keep optimizer states of different structure: weight decay can change its
  # value on resuming, not whether it is on.
  saved_decay = _field(saved, "optim.weight_decay") or 0.0
  decay = _field(current, "optim.weight_decay")
  if bool(saved_decay) != bool(decay):
    diffs.append(f"optim.weight_decay: checkpoint {saved_decay!r} vs config {decay!r} (on in one "
                 "and off in the other)")
  if diffs:
    raise UserError(f"{where} was trained with a different model, optimizer or data shape "
                    f"({'; '.join(diffs)}); "
                    "use another --workdir or the checkpoint's values.")


def _warn_about_partial_checkpoints(directory: str) -> None:
  if not os.path.isdir(directory):
    return
  for name in sorted(os.listdir(directory)):
    if "tmp" in name:
      logging.warning("Ignoring partially written checkpoint %s (the run was interrupted while "
                      "saving it); resuming from the last complete one.",
                      os.path.join(directory, name))


class Checkpointer:
  """Saves and restores the train state, the data iterator position and the config."""

  def __init__(self, workdir: str, keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    _warn_about_partial_checkpoints(self.directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save,
                                           cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, params: Any, optimizer: Any, data_iterator: Any,
           config: ml_collections.ConfigDict) -> None:
    args = ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        optimizer=ocp.args.StandardSave(optimizer),
        data_iterator=ocp.args.JsonSave(data_iterator),
        config=ocp.args.JsonSave(config_to_dict(config)))
    if step in self._manager.all_steps():
      # Only a checkpoint newer than the one training resumed from can be here: a damaged one it
      # skipped (newest_readable). The run has just recomputed that step, so it replaces it.
      logging.warning("Replacing checkpoint %d in %s (skipped as unreadable at resume).", step,
                      self.directory)
      self._manager.delete(step)
    self._manager.save(step, args=args, force=True)

  def saved_config(self, step: int) -> dict:
    return self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))[
        "config"]

  def restore(self, step: int, params: Any, optimizer: Any) -> tuple[Any, Any, Any]:
    """Restores into the structure/shardings of the given (abstract or concrete) trees."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(params),
        optimizer=ocp.args.StandardRestore(optimizer),
        data_iterator=ocp.args.JsonRestore()))
    return restored["params"], restored["optimizer"], restored["data_iterator"]

  def restore_latest_good(self, params: Any, optimizer: Any
                          ) -> tuple[int, Any, Any, Any] | None:
    """Restores the newest checkpoint that reads back; falls back to older ones with a warning."""
    found = self.newest_readable(reversed(self.all_steps()),
                                 lambda step: self.restore(step, params, optimizer))
    return None if found is None else (found[0], *found[1])

  def newest_readable(self, steps: Iterable[int], restore: Callable[[int], Any]
                      ) -> tuple[int, Any] | None:
    """(step, restore(step)) for the first of steps whose checkpoint reads back, warning about
    each damaged one before it; None if none does."""
    for step in steps:
      try:
        return step, restore(step)
      except DAMAGED_CHECKPOINT_ERRORS as e:
        logging.warning("Checkpoint %d in %s cannot be read (%s); trying the previous one.",
                        step, self.directory, damage_summary(e))
    return None

  def restore_params(self, step: int, params: Any) -> Any:
    """Parameters alone, onto this process's first device (for inference, whatever the mesh
    the run was trained on)."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                          params)
    return self._manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(target)))["params"]

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
