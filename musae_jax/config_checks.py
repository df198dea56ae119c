"""Checks a config before any work starts, so a typo costs a one-line message, not a traceback."""

import ml_collections

from data_pipeline.musae_windows import builder
from musae_common.errors import UserError
from musae_jax import lstm
from musae_jax import model
from musae_jax import priors
from musae_jax import step
from musae_jax import weight_rounding

# Each choice is read from the module that implements it.
_CHOICES = {
    "data.bars": tuple(config.bars for config in builder.MusaeWindows.BUILDER_CONFIGS),
    "model.prior": priors.PRIORS,
    "model.dtype": model.DTYPE_CHOICES,
    "model.matmul_precision": model.MATMUL_PRECISIONS,
    "model.weight_rounding": weight_rounding.ROUNDING_CHOICES,
    "model.decoder": model.DECODERS,
    "model.encoder": model.ENCODERS,
    "model.encoder_bar_reader": model.BAR_READERS,
    "model.conductor": model.CONDUCTORS,
    "optim.lr_schedule": step.LR_SCHEDULES,
}
_POSITIVE = ("batch_size", "num_train_steps", "log_every_steps", "eval_every_steps",
             "checkpoint_every_steps", "keep_checkpoints", "model.hidden_size",
             "model.latent_size", "model.encoder_layers", "model.decoder_layers",
             "model.critic_hidden_size", "model.conductor_hidden_size",
             "model.conductor_layers", "optim.learning_rate", "optim.critic_steps")


def _get(config: ml_collections.ConfigDict, dotted: str):
  value = config
  for part in dotted.split("."):
    if part not in value:
      raise UserError(f"config field {dotted!r} is missing; start from configs/default.py.")
    value = value[part]
  return value


def validate(config: ml_collections.ConfigDict) -> None:
  for field, choices in _CHOICES.items():
    if _get(config, field) not in choices:
      raise UserError(f"config.{field}={_get(config, field)!r} is not one of {choices}.")
  for field in _POSITIVE:
    if not _get(config, field) > 0:
      raise UserError(f"config.{field}={_get(config, field)!r} must be positive.")
  # The kernel registry says which names exist (experiments may register more).
  impl = lstm.resolve_impl(_get(config, "model.lstm_impl"))
  if impl in lstm.WHOLE_LAYER_IMPLEMENTATIONS and config.model.dtype == "bfloat16":
    raise UserError(f"config.model.lstm_impl={impl!r} runs float32 only (cuDNN through JAX takes "
                    "no bfloat16 data); use --config.model.dtype=float32 or another lstm_impl.")
  summary_size = _get(config, "model.encoder_summary_size")
  if summary_size < 0:
    raise UserError(f"config.model.encoder_summary_size={summary_size!r} must be >= 0 "
                    "(0 = hidden_size).")
  if summary_size and config.model.encoder != "hierarchical":
    raise UserError(f"config.model.encoder_summary_size={summary_size!r} sizes the hierarchical "
                    "encoder's layer over the bars; the flat encoder has none (set "
                    "--config.model.encoder=hierarchical, or leave it 0).")
  if config.model.encoder_bar_reader != "lstm" and config.model.encoder != "hierarchical":
    raise UserError(f"config.model.encoder_bar_reader={config.model.encoder_bar_reader!r} reads "
                    "the hierarchical encoder's bar summaries; the flat encoder has none (set "
                    "--config.model.encoder=hierarchical, or leave it 'lstm').")
  if config.model.encoder_bar_reader == "concat" and summary_size:
    raise UserError(f"config.model.encoder_summary_size={summary_size!r} sizes the biLSTM over "
                    "the bars, which encoder_bar_reader='concat' replaces; leave it 0.")
  if config.model.conductor != "lstm" and config.model.decoder != "hierarchical":
    raise UserError(f"config.model.conductor={config.model.conductor!r} is the hierarchical "
                    "decoder's; the flat decoder has none (set --config.model.decoder="
                    "hierarchical, or leave it 'lstm').")
  if not 0.0 <= _get(config, "model.dropout") < 1.0:
    raise UserError(f"config.model.dropout={config.model.dropout!r} must be in [0, 1).")
  if not _get(config, "optim.weight_decay") >= 0.0:
    raise UserError(f"config.optim.weight_decay={config.optim.weight_decay!r} must be >= 0.")
  if not 0.0 < _get(config, "data.train_song_fraction") <= 1.0:
    raise UserError(f"config.data.train_song_fraction={config.data.train_song_fraction!r} must "
                    "be in (0, 1].")
  if config.data.transpose_min > config.data.transpose_max:
    raise UserError(f"config.data.transpose_min={config.data.transpose_min} is above "
                    f"config.data.transpose_max={config.data.transpose_max}.")
