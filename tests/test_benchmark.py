"""The training-speed benchmark: its FLOP count and its command line."""

import json
import pathlib
import subprocess
import sys

from musae_jax import benchmark

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_flop_count_matches_the_pytorch_reference():
  # shared/bench/torch_musae.py prints train_gflop_per_sample 2.0459 at T=32 H=256 Z=128 with
  # the Gaussian prior (critic input = Z), the shape its README reports.
  flops = benchmark.flops_per_sample(32, 256, 128, 128, layers=3)
  assert round(3 * flops["total"] / 1e9, 4) == 2.0459
  assert flops["total"] == flops["encoder"] + flops["decoder"] + flops["critic"]
  # The hierarchical decoder: the same track recurrences with [z, embedding] inputs, one
  # initial state per bar, plus the conductor's 16 steps (2 layers of 512 units reading z).
  hierarchical = benchmark.flops_per_sample(256, 192, 128, 128, layers=3, conductor_hidden=512,
                                            conductor_layers=2)
  flat = benchmark.flops_per_sample(256, 192, 128, 128, layers=3)
  lstm = lambda inputs, units: 2 * 4 * units * (inputs + units)
  conductor = 16 * (lstm(128, 512) + lstm(512, 512)) + 2 * 128 * 512
  per_track = 256 * (lstm(128 + 512, 192) - lstm(128, 192)) + 16 * 2 * 512 * 192 - 2 * 128 * 192
  assert hierarchical["decoder"] - flat["decoder"] == conductor + 4 * per_track
  assert hierarchical["encoder"] == flat["encoder"]
  # The hierarchical encoder: the stack's work bar by bar, plus a biLSTM over 16 bar summaries.
  both = benchmark.flops_per_sample(256, 192, 128, 128, layers=3, hierarchical_encoder=True)
  assert both["encoder"] - flat["encoder"] == 16 * 2 * lstm(2 * 192, 192)
  assert both["decoder"] == flat["decoder"]
  # A wider layer over the bars (encoder_summary units) and the heads that read its states.
  wide = benchmark.flops_per_sample(256, 192, 128, 128, layers=3, hierarchical_encoder=True,
                                    encoder_summary=512)
  assert wide["encoder"] - both["encoder"] == (16 * 2 * (lstm(2 * 192, 512) - lstm(2 * 192, 192))
                                               + 2 * 2 * 2 * (512 - 192) * 128)
  # Direct paths: heads reading the 16 summaries side by side instead of the biLSTM over them,
  # and one matmul of z to the 16 bar embeddings instead of the conductor LSTM.
  direct = benchmark.flops_per_sample(256, 192, 128, 128, layers=3, hierarchical_encoder=True,
                                      bar_reader="concat", conductor_hidden=512,
                                      conductor_layers=2, conductor="linear")
  assert direct["encoder"] - both["encoder"] == (2 * 2 * (16 * 2 * 192 - 2 * 192) * 128
                                                 - 16 * 2 * lstm(2 * 192, 192))
  assert direct["decoder"] - hierarchical["decoder"] == 2 * 128 * 16 * 512 - conductor


def test_command_prints_one_json_record():
  command = [sys.executable, "-m", "musae_jax.benchmark", "--bars=2", "--hidden=16", "--latent=8",
             "--batch=4", "--steps=2", "--warmup=1", "--prior=flower", "--genres=3"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=True)
  lines = [line for line in result.stdout.splitlines() if line.strip()]
  assert len(lines) == 1, result.stdout
  record = json.loads(lines[0])
  for key in ("samples_per_s", "steps_per_s", "step_ms_median", "step_ms_min", "step_ms_max",
              "compile_s", "gflop_per_s", "peak_memory_bytes", "device", "jax_version", "impl",
              "config"):
    assert key in record, key
  assert len(record["step_ms_all"]) == 2
  assert record["step_ms_min"] <= record["step_ms_median"] <= record["step_ms_max"]
  assert abs(record["samples_per_s"] * record["step_ms_median"] / 1e3 - 4) < 0.01
  assert record["config"]["timesteps"] == 32 and record["config"]["prior"] == "flower"
  assert record["gflop_per_s"] > 0 and record["final_loss"] > 0
  if record["impl"] == "cpu_fused":  # The level, and whether bf16 would pay on this CPU.
    from musae_jax import lstm_cpu  # pylint: disable=g-import-not-at-top
    assert record["kernel_isa"] == lstm_cpu.ISA and isinstance(record["bf16_pays"], bool)
    assert (record["bf16_dot_speedup"] is None) == (lstm_cpu.BF16_DOT_SPEEDUP is None)
  command += ["--decoder=hierarchical", "--conductor_hidden=12", "--conductor_layers=1",
              "--encoder=hierarchical"]
  for direct_paths in ([], ["--bar_reader=concat", "--conductor=linear"]):
    result = subprocess.run(command + direct_paths, cwd=REPO, capture_output=True, text=True,
                            timeout=300, check=True)
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["config"]["decoder"] == record["config"]["encoder"] == "hierarchical"
    assert record["config"]["conductor_hidden"] == 12 and record["final_loss"] > 0
  assert record["config"]["bar_reader"] == "concat" and record["config"]["conductor"] == "linear"


def test_bad_kernel_name_is_one_line_error():
  command = [sys.executable, "-m", "musae_jax.benchmark", "--hidden=16", "--latent=8", "--batch=2",
             "--steps=1", "--warmup=0", "--impl=nonexistent"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("error: Unknown LSTM implementation")
  flat_with_summary = subprocess.run(command[:-1] + ["--encoder_summary=64"], cwd=REPO,
                                     capture_output=True, text=True, timeout=300)
  assert flat_with_summary.returncode == 2
  assert "the flat encoder has none" in flat_with_summary.stderr
  assert "Traceback" not in flat_with_summary.stderr
  flat_with_linear_conductor = subprocess.run(command[:-1] + ["--conductor=linear"], cwd=REPO,
                                              capture_output=True, text=True, timeout=300)
  assert flat_with_linear_conductor.returncode == 2
  assert "the flat decoder has none" in flat_with_linear_conductor.stderr
