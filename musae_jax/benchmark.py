r"""Times the real training step and prints one JSON line.

  python -m musae_jax.benchmark --bars=2 --hidden=256 --latent=128 --batch=64 \
      [--prior=gaussian|flower] [--dtype=float32|bfloat16] [--steps=10 --warmup=2] [--impl=auto]
      [--decoder=flat|hierarchical [--conductor_hidden=512 --conductor_layers=2]]
      [--encoder=flat|hierarchical [--encoder_summary=N | --bar_reader=concat]]
      [--conductor=lstm|linear] [--weight_rounding=nearest|stochastic]

The timed function is the one the trainer jits, musae_jax.step.make_train_step, on synthetic
batches of random tokens made (and put on the device) before timing, rotating over a few so that
no step sees the previous step's batch. Every step is waited for, so each time is one whole step.

gflop_per_s counts matmul FLOPs analytically the way the PyTorch reference
(shared/bench/torch_musae.py) counts them: the full dense LSTM input matmuls (one-hot input of the
encoder, z at every decoder step), training = 3 x forward. A kernel that skips some of that work
(the decoder's constant input is projected once) is credited as if it did it, so gflop_per_s
compares like with like across implementations and with torch.
"""

import json
import os
import statistics
import time

from absl import flags
from absl import logging

from data_pipeline.tokens import NUM_CLASSES, STEPS_PER_BAR, TRACKS
from musae_common import cli
from musae_common import host_memory
from musae_jax import default_config
from musae_jax import priors

_BARS = flags.DEFINE_integer("bars", 2, "Window length in bars (16 steps per bar).")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "LSTM units (and the critic's hidden units).")
_LATENT = flags.DEFINE_integer("latent", 128, "Size of the latent code z.")
_BATCH = flags.DEFINE_integer("batch", 64, "Windows per step.")
_PRIOR = flags.DEFINE_enum("prior", "gaussian", ["gaussian", "flower"], "Prior of the critic.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Matmul compute dtype.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (the median is reported).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
_IMPL = flags.DEFINE_string("impl", "auto", "LSTM kernel: auto, scan, reference, cpu_fused.")
_GENRES = flags.DEFINE_integer("genres", 32, "Genre vocabulary size for --prior=flower.")
_LAYERS = flags.DEFINE_integer("layers", 3, "LSTM layers of the encoder and of each decoder.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the parameters and the synthetic batches.")
_DECODER = flags.DEFINE_enum("decoder", "flat", ["flat", "hierarchical"],
                             "The paper's decoders, or MusicVAE's conductor and per-bar decoders.")
_CONDUCTOR_HIDDEN = flags.DEFINE_integer("conductor_hidden", 512,
                                         "--decoder=hierarchical: conductor units.")
_CONDUCTOR_LAYERS = flags.DEFINE_integer("conductor_layers", 2,
                                         "--decoder=hierarchical: conductor layers.")

_ENCODER = flags.DEFINE_enum("encoder", "flat", ["flat", "hierarchical"],
                             "The paper's encoder, or one that reads each bar on its own and then "
                             "the bars' summaries.")
_ENCODER_SUMMARY = flags.DEFINE_integer(
    "encoder_summary", 0,
    "--encoder=hierarchical: units of the biLSTM layer over the bars (0 = --hidden).")
_BAR_READER = flags.DEFINE_enum("bar_reader", "lstm", ["lstm", "concat"],
                                "--encoder=hierarchical: a biLSTM over the bars' summaries, or z's "
                                "heads reading them side by side.")
_WEIGHT_ROUNDING = flags.DEFINE_enum(
    "weight_rounding", "nearest", ["nearest", "stochastic"],
    "How bf16 matmuls round the weights (config.model.weight_rounding).")
_CONDUCTOR = flags.DEFINE_enum("conductor", "lstm", ["lstm", "linear"],
                               "--decoder=hierarchical: an LSTM conductor, or one linear map of z "
                               "per bar.")

_ROTATING_BATCHES = 4


def flops_per_sample(steps: int, hidden: int, latent: int, critic_in: int, layers: int,
                     conductor_hidden: int = 0, conductor_layers: int = 0,
                     hierarchical_encoder: bool = False, encoder_summary: int = 0,
                     bar_reader: str = "lstm", conductor: str = "lstm") -> dict:
  """Analytic forward matmul FLOPs per window, as the PyTorch reference counts them; with
  conductor_hidden, of the hierarchical decoder (a conductor step per bar; the track decoders
  read [z, the bar's embedding] and start each bar from the embedding); with
  hierarchical_encoder, plus the biLSTM layer over the bars' summaries (the stack does the same
  work bar by bar) of encoder_summary units (0: hidden) and the heads reading its states, or
  (bar_reader="concat") heads reading every bar's summary; conductor="linear" is one matmul of z
  to every bar's embedding.

  LSTM: 2 * 4H * (in + H) per step, direction and layer; 1 multiply-add = 2 FLOPs.
  """
  tracks = len(TRACKS)
  lstm = lambda inputs, units=hidden: 2 * 4 * units * (inputs + units)
  encoder = steps * 2 * (lstm(tracks * NUM_CLASSES) + (layers - 1) * lstm(2 * hidden))
  summary = (encoder_summary or hidden) if hierarchical_encoder else hidden
  bars = steps // STEPS_PER_BAR
  concatenates = hierarchical_encoder and bar_reader == "concat"
  heads_input = bars * 2 * hidden if concatenates else 2 * summary
  encoder += 2 * 2 * heads_input * latent  # mu and log-variance heads
  if hierarchical_encoder and not concatenates:
    encoder += bars * 2 * lstm(2 * hidden, summary)
  initial_states = (bars * 2 * conductor_hidden * hidden if conductor_hidden else
                    2 * latent * hidden)
  decoder_track = (steps * (lstm(latent + conductor_hidden) + (layers - 1) * lstm(hidden)) +
                   initial_states + steps * 2 * hidden * NUM_CLASSES)
  decoder = tracks * decoder_track
  if conductor_hidden and conductor == "linear":
    decoder += 2 * latent * bars * conductor_hidden
  elif conductor_hidden:
    decoder += (bars * (lstm(latent, conductor_hidden) +
                        (conductor_layers - 1) * lstm(conductor_hidden, conductor_hidden)) +
                2 * latent * conductor_hidden)
  critic = 4 * 2 * (critic_in * hidden + hidden * hidden + hidden)  # 4 critic passes
  return {"encoder": encoder, "decoder": decoder, "critic": critic,
          "total": encoder + decoder + critic}


def make_config(bars: int, hidden: int, latent: int, batch: int, prior: str, dtype: str,
                impl: str, layers: int, seed: int, decoder: str = "flat",
                conductor_hidden: int = 512, conductor_layers: int = 2, encoder: str = "flat",
                encoder_summary: int = 0, bar_reader: str = "lstm", conductor: str = "lstm",
                weight_rounding: str = "nearest"):
  config = default_config.get_config()
  config.name = "benchmark"
  config.seed = seed
  config.batch_size = batch
  config.data.bars = bars
  config.model.hidden_size = hidden
  config.model.latent_size = latent
  config.model.critic_hidden_size = hidden
  config.model.encoder_layers = layers
  config.model.decoder_layers = layers
  config.model.prior = prior
  config.model.dtype = dtype
  config.model.weight_rounding = weight_rounding
  config.model.lstm_impl = impl
  config.model.decoder = decoder
  config.model.conductor_hidden_size = conductor_hidden
  config.model.conductor_layers = conductor_layers
  config.model.encoder = encoder
  config.model.encoder_summary_size = encoder_summary
  config.model.encoder_bar_reader = bar_reader
  config.model.conductor = conductor
  config.optim.beta_every_steps = 1  # The adversarial term is on (its cost is there anyway).
  return config


def synthetic_batches(batch: int, steps: int, num_genres: int, seed: int, count: int):
  """Random token windows and k-hot genres, as the data loader would deliver them."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed + 1)
  batches = []
  for _ in range(count):
    tokens = rng.integers(0, NUM_CLASSES, size=(batch, steps, len(TRACKS)), dtype=np.uint8)
    genres = np.zeros((batch, num_genres), np.float32)
    if num_genres:
      genres[np.arange(batch), rng.integers(0, num_genres, size=batch)] = 1.0
    batches.append({"tokens": tokens, "genres": genres})
  return batches


def make_step(bars: int, hidden: int, latent: int, batch: int, prior: str = "gaussian",
              dtype: str = "float32", impl: str = "auto", genres: int = 32, layers: int = 3,
              seed: int = 0, decoder: str = "flat", conductor_hidden: int = 512,
              conductor_layers: int = 2, encoder: str = "flat", encoder_summary: int = 0,
              bar_reader: str = "lstm", conductor: str = "lstm", weight_rounding: str = "nearest"):
  """The timed step before compilation: (jitted train step, state, batches on the device, the
  resolved impl). benchmarks/step_profile.py profiles the same step."""
  import jax  # pylint: disable=g-import-not-at-top
  from musae_jax import config_checks  # pylint: disable=g-import-not-at-top
  from musae_jax import lstm  # pylint: disable=g-import-not-at-top
  from musae_jax import step as train_step_lib  # pylint: disable=g-import-not-at-top

  resolved_impl = lstm.resolve_impl(impl)  # An unknown name fails here, before any work.
  config = make_config(bars, hidden, latent, batch, prior, dtype, impl, layers, seed, decoder,
                       conductor_hidden, conductor_layers, encoder, encoder_summary, bar_reader,
                       conductor, weight_rounding)
  config_checks.validate(config)  # The trainer's checks: e.g. a flag only one model kind has.
  num_genres = genres if prior == "flower" else 0
  num_steps = bars * STEPS_PER_BAR
  graphdef, state = train_step_lib.create_train_state(config, num_genres)
  train_step = jax.jit(train_step_lib.make_train_step(config, graphdef, num_genres),
                       donate_argnums=0)
  device = jax.devices()[0]
  batches = [jax.device_put(b, device)
             for b in synthetic_batches(batch, num_steps, num_genres, seed, _ROTATING_BATCHES)]
  return train_step, state, batches, resolved_impl


def run(bars: int, hidden: int, latent: int, batch: int, prior: str = "gaussian",
        dtype: str = "float32", steps: int = 10, warmup: int = 2, impl: str = "auto",
        genres: int = 32, layers: int = 3, seed: int = 0, decoder: str = "flat",
        conductor_hidden: int = 512, conductor_layers: int = 2, encoder: str = "flat",
        encoder_summary: int = 0, bar_reader: str = "lstm", conductor: str = "lstm",
        weight_rounding: str = "nearest") -> dict:
  """Compiles and times the train step; returns the JSON record."""
  import jax  # pylint: disable=g-import-not-at-top

  train_step, state, batches, resolved_impl = make_step(
      bars=bars, hidden=hidden, latent=latent, batch=batch, prior=prior, dtype=dtype, impl=impl,
      genres=genres, layers=layers, seed=seed, decoder=decoder,
      conductor_hidden=conductor_hidden, conductor_layers=conductor_layers, encoder=encoder,
      encoder_summary=encoder_summary, bar_reader=bar_reader, conductor=conductor,
      weight_rounding=weight_rounding)
  num_genres = genres if prior == "flower" else 0
  num_steps = bars * STEPS_PER_BAR
  device = jax.devices()[0]

  start = time.perf_counter()
  compiled = train_step.lower(state, batches[0]).compile()
  compile_s = time.perf_counter() - start
  for i in range(warmup):
    state, metrics = compiled(state, batches[i % len(batches)])
  jax.block_until_ready((state, metrics) if warmup else state)
  times = []
  for i in range(steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batches[(warmup + i) % len(batches)])
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)

  median = statistics.median(times)
  critic_in = latent + priors.component_count(prior, num_genres)
  hierarchical = decoder == "hierarchical"
  flops = flops_per_sample(num_steps, hidden, latent, critic_in, layers,
                           conductor_hidden if hierarchical else 0,
                           conductor_layers if hierarchical else 0,
                           hierarchical_encoder=encoder == "hierarchical",
                           encoder_summary=encoder_summary, bar_reader=bar_reader,
                           conductor=conductor)
  memory = device.memory_stats() or {}
  analysis = compiled.memory_analysis()
  return {
      "samples_per_s": round(batch / median, 3),
      "steps_per_s": round(1.0 / median, 4),
      "step_ms_median": round(median * 1e3, 2),
      "step_ms_min": round(min(times) * 1e3, 2),
      "step_ms_max": round(max(times) * 1e3, 2),
      "step_ms_all": [round(t * 1e3, 1) for t in times],
      "compile_s": round(compile_s, 2),
      "gflop_per_s": round(3 * flops["total"] * batch / median / 1e9, 2),
      "train_gflop_per_sample": round(3 * flops["total"] / 1e9, 4),
      "peak_memory_bytes": memory.get("peak_bytes_in_use"),
      "compiled_temp_bytes": None if analysis is None else analysis.temp_size_in_bytes,
      "device": f"{device.platform}:{device.device_kind}",
      "cpu_count": os.cpu_count(),
      "jax_version": jax.__version__,
      "impl": resolved_impl,
      **(_kernel_record() if resolved_impl == "cpu_fused" else {}),
      "final_loss": round(float(metrics["loss/total"]), 4) if steps else None,
      "config": {"bars": bars, "timesteps": num_steps, "hidden": hidden, "latent": latent,
                 "batch": batch, "prior": prior, "dtype": dtype, "layers": layers,
                 "genres": num_genres, "steps": steps, "warmup": warmup, "seed": seed,
                 "decoder": decoder, "encoder": encoder,
                 **({"weight_rounding": weight_rounding} if dtype != "float32" else {}),
                 **({"encoder_summary": encoder_summary, "bar_reader": bar_reader}
                    if encoder == "hierarchical" else {}),
                 **({"conductor_hidden": conductor_hidden, "conductor_layers": conductor_layers,
                     "conductor": conductor} if hierarchical else {})},
  }


def _kernel_record() -> dict:
  """The fused CPU kernel's level, and whether bf16 pays on this CPU (lstm_cpu.BF16_PAYS)."""
  from musae_jax import lstm_cpu  # pylint: disable=g-import-not-at-top  (loaded by the step)
  speedup = lstm_cpu.BF16_DOT_SPEEDUP
  return {"kernel_isa": lstm_cpu.ISA, "bf16_dot_speedup": speedup and round(speedup, 2),
          "bf16_pays": lstm_cpu.BF16_PAYS}


def _benchmark() -> None:
  record = run(_BARS.value, _HIDDEN.value, _LATENT.value, _BATCH.value, _PRIOR.value,
               _DTYPE.value, _STEPS.value, _WARMUP.value, _IMPL.value, _GENRES.value,
               _LAYERS.value, _SEED.value, _DECODER.value, _CONDUCTOR_HIDDEN.value,
               _CONDUCTOR_LAYERS.value, _ENCODER.value, _ENCODER_SUMMARY.value,
               _BAR_READER.value, _CONDUCTOR.value, _WEIGHT_ROUNDING.value)
  record["keep_freed_memory"] = host_memory.keep_freed_memory()  # Applied by cli.run_tool.
  print(json.dumps(record))


def main(argv):
  cli.run_tool(argv, _benchmark, verbosity=logging.WARNING)


def console_main() -> None:
  """The musae-benchmark console script."""
  cli.run_console(main, __name__)


if __name__ == "__main__":
  console_main()
