"""Every config field, its default and what it means: the schema all configs/*.py start from, and
the one way to set fields by name (override).

The defaults are the paper's 16-bar model with a Gaussian prior. The package owns them (the
benchmark and the config checks need them in an install without the repository's configs/);
configs/default.py adds the repository's demo corpus as data.
"""

from typing import Any, Mapping

import ml_collections

from musae_common.errors import UserError


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.name = "default"  # Run name; the default workdir is runs/<name>.
  config.seed = 0  # Seeds parameter init, data order, augmentation and every per-step RNG.
  config.batch_size = 256  # Global batch size (summed over all devices and processes).
  config.num_train_steps = 500_000  # Number of autoencoder updates.
  config.log_every_steps = 100  # Training metrics are averaged and written this often.
  config.eval_every_steps = 5_000  # Validation accuracy is computed this often.
  config.num_eval_batches = 50  # Validation batches per evaluation (0 = the whole split).
  config.checkpoint_every_steps = 5_000  # A checkpoint is saved this often (and at the end).
  config.keep_checkpoints = 3  # Number of most recent checkpoints kept on disk.

  config.data = ml_collections.ConfigDict()
  config.data.midi_dir = ""  # MIDI folder the dataset is built from if missing.
  config.data.genres_file = ""  # JSON {relative path: [tags]}; "" = none.
  config.data.data_dir = "data/tfds"  # TFDS data_dir holding musae_windows/<bars>bar.
  config.data.bars = 16  # Window length in bars: 2 or 16 (selects the TFDS builder config).
  config.data.build_workers = 0  # Processes used to build the dataset (0 = all cores).
  config.data.transpose_min = -5  # Lowest random transposition (semitones) for pitched tracks.
  config.data.transpose_max = 6  # Highest random transposition (semitones) for pitched tracks.
  config.data.loader_workers = 0  # grain worker processes (0 = load in the main process).
  # Share of the training split's songs trained on, picked by a hash of their paths (nested:
  # a smaller share's songs are among a larger one's); 1 = all. For data-scaling studies.
  config.data.train_song_fraction = 1.0

  config.model = ml_collections.ConfigDict()
  config.model.hidden_size = 1024  # N_h: LSTM units in encoder and decoders.
  config.model.latent_size = 512  # N_z: size of the latent code z.
  config.model.encoder_layers = 3  # Stacked bidirectional LSTM layers in the encoder.
  config.model.decoder_layers = 3  # Stacked LSTM layers in each track decoder.
  config.model.initial_posterior_std = 1.0  # sigma of q(z|x) at init (the logvar bias: 2 log sigma).
  config.model.residual = False  # Add each stacked LSTM layer's input to its output (layers >= 2).
  # Dropout rate on the input of every stacked LSTM layer above the first (encoder, decoders,
  # conductor), in training only; 0 = none (the paper's).
  config.model.dropout = 0.0
  # "flat" (the paper's: the encoder's stacked biLSTM reads the whole window) or "hierarchical"
  # (the stack reads each bar on its own, one more biLSTM layer reads the bars' summaries).
  config.model.encoder = "flat"
  # Hierarchical encoder: units of the biLSTM layer over the bars' summaries, whose two final
  # states give z's mean and log-variance (so 2x this bounds what z can carry); 0 = hidden_size.
  config.model.encoder_summary_size = 0
  # Hierarchical encoder: "lstm" (that biLSTM layer over the bars' summaries) or "concat" (z's
  # heads read all the bars' summaries side by side: every bar one matmul from z).
  config.model.encoder_bar_reader = "lstm"
  # "flat" (the paper's: each track decoder reads z at every step of the window) or
  # "hierarchical" (MusicVAE's conductor reads z and emits one embedding per bar; each track
  # decoder decodes every bar from z and that bar's embedding, all bars as one batch).
  config.model.decoder = "flat"
  # Each track decoder's first layer also reads the step's position in its bar (a one-hot of
  # 16), beside z; False = z only (the paper's).
  config.model.step_position = False
  config.model.conductor_hidden_size = 512  # Hierarchical: conductor LSTM units = bar embedding size.
  # Hierarchical: "lstm" (MusicVAE's conductor, conductor_layers deep) or "linear" (each bar's
  # embedding is tanh of its own linear map of z, conductor_hidden_size wide).
  config.model.conductor = "lstm"
  config.model.conductor_layers = 2  # Hierarchical: stacked conductor LSTM layers.
  config.model.critic_hidden_size = 1024  # Units in each of the critic's 2 tanh hidden layers.
  config.model.prior = "gaussian"  # "gaussian" (N(0, I)) or "flower" (one component per genre).
  config.model.flower_radial_variance = 0.1  # Flower prior: variance along the radius (a_1).
  config.model.flower_other_variance = 0.001  # Flower prior: variance in every other direction (a_2).
  # LSTM kernel: "auto", "cpu_fused", "scan" (custom VJP), "reference", "cudnn" (GPU reference).
  config.model.lstm_impl = "auto"
  # Compute dtype of the matmuls: "float32", "bfloat16" (float32 accumulation, parameters and
  # optimizer state), or "auto": bfloat16 where bf16 matmuls pay (AMX tiles, or bf16 dot
  # instructions faster than float32 FMAs: lstm_cpu.BF16_PAYS), else float32.
  config.model.dtype = "float32"
  # How bf16 matmuls round the float32 weights: "nearest" (a cast) or "stochastic" (a fresh draw
  # each step: no rounding bias in the gradient, see weight_rounding.py). Ignored in float32.
  config.model.weight_rounding = "nearest"
  # float32 matmuls' precision: "default" (TF32 on GPUs that have it), "highest" (full float32).
  config.model.matmul_precision = "default"

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 1e-4  # Adam learning rate at step 0 (paper).
  # "inverse_time": lr/(1+d*t), Keras's optimizer `decay` (what the Keras original applied after
  # each update); "exponential": lr*(1-d)^t, the literal reading of the paper, which with d=1e-4
  # leaves lr*e^-5 at 50k steps.
  config.optim.lr_schedule = "inverse_time"
  config.optim.lr_decay = 1e-4  # d above: decay applied after each update (paper).
  config.optim.b1 = 0.9  # Adam beta1.
  config.optim.b2 = 0.999  # Adam beta2.
  config.optim.clip_global_norm = 0.0  # Clip gradients to this global norm (0 = no clipping).
  # Decoupled weight decay (AdamW) of the autoencoder's weight matrices, scaled by the learning
  # rate; 0 = Adam (the paper's). The critic is not decayed.
  config.optim.weight_decay = 0.0
  config.optim.beta_max = 1.0  # Final weight of the adversarial loss.
  config.optim.beta_increment = 0.1  # beta grows by this much ...
  config.optim.beta_every_steps = 10_000  # ... every this many updates, starting from 0.
  config.optim.gradient_penalty_weight = 10.0  # WGAN-GP lambda.
  config.optim.critic_steps = 1  # Critic updates per autoencoder update (n_critic).

  # Warnings when training stalls (musae_jax/training_health.py), checked at every log line.
  config.health = ml_collections.ConfigDict()
  config.health.plateau_steps = 2_000  # Warn when reconstruction has not improved for this long ...
  config.health.plateau_min_improvement = 0.005  # ... by at least this fraction of its best.
  config.health.saturated_penalty = 0.9  # Warn when the gradient penalty stays at/above this.
  config.health.runaway_critic_loss = 50.0  # Warn when |critic loss| exceeds this.
  return config


def override(config: ml_collections.ConfigDict,
             fields: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """Sets existing fields by dotted name ({"model.hidden_size": 64, ...}) and returns the config:
  reproduce's --set and the tests' small configs. A string given for a field of another type (a
  value typed on a command line) is read as that type; a name that is no field is a UserError,
  not a new field."""
  for name, value in fields.items():
    *parents, leaf = name.split(".")
    node = config
    for part in parents:
      node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      raise UserError(f"{name!r} is not a config field (e.g. model.hidden_size).")
    if isinstance(value, str) and not isinstance(node[leaf], str):
      value = _from_text(value, type(node[leaf]))
    node[leaf] = value
  return config


def _from_text(text: str, field_type: type):
  if field_type is bool:
    return text.lower() in ("1", "true", "yes")
  try:
    return field_type(text)
  except ValueError:
    raise UserError(f"{text!r} is not of type {field_type.__name__}.") from None
