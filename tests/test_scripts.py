"""Smoke tests of the analysis scripts (scripts/) and the ISA benchmarks (benchmarks/): each runs
as its command line does, on tiny inputs, and prints what it is for."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest_run import REPO


def _run(*args: str) -> str:
  result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  return result.stdout


def test_signal_at_init(demo_data_dir):
  out = _run("scripts/signal_at_init.py", f"--data_dir={demo_data_dir}", "--layers=2",
             "--hidden=16", "--residual")
  assert "encoder layer 2: spread of the final states" in out
  assert "decoder layer 2: spread of the outputs" in out


@pytest.mark.parametrize("script,expected", [("posterior_noise", "accuracy from the mean code"),
                                             ("token_errors", "share of the track's errors"),
                                             ("position_errors", "note accuracy by bar")])
def test_run_analysis(trained_run, script, expected):
  out = _run(f"scripts/{script}.py", f"--workdir={trained_run.workdir}",
             f"--data_dir={trained_run.data_dir}", "--split=train")
  assert expected in out


def test_bf16_gradient_error_measures_each_variant_against_float32(trained_run):
  out = _run("scripts/bf16_gradient_error.py", f"--workdir={trained_run.workdir}",
             f"--data_dir={trained_run.data_dir}", "--split=train", "--batch_size=1",
             "--batches=2")
  # (The script is not imported here: its absl flags would clash with the other scripts'.)
  rows = out.split("note accuracy\n", 1)[1].splitlines()
  errors = {row[:38].strip(): [float(value) for value in row[38:].split()] for row in rows}
  assert len(errors.pop("float32")) == 2, out  # Its reconstruction only.
  assert sorted(errors) == sorted([
      "bf16 everywhere", "bf16 in the encoder only", "bf16 in the decoders only",
      "bf16 in the code heads only", "bf16 in the initial states only",
      "float32, weights rounded to nearest", "bf16, weights rounded stochastically"]), out
  # Every variant rounds something, so its gradient moves, but by bf16's rounding, not more.
  assert all(0 < error < 0.5 and 0 < shared < 0.5 and 0 < noise < 0.5 and 0 <= accuracy <= 1
             for error, shared, noise, accuracy, _ in errors.values()), out


def test_wrong_drum_confusions_count_kit_groups_and_pairs():
  from scripts import token_errors  # pylint: disable=g-import-not-at-top
  target = np.array([36, 36, 36, 42, 42, 38, 128, 129])
  # Right; kick 35 for kick 36 (same group); a hi-hat for a kick; a kick for a hi-hat; silence
  # for a hi-hat; right; two steps that are no onset.
  predicted = np.array([36, 35, 42, 36, 128, 38, 36, 129])
  confusions = token_errors.wrong_drum_confusions(target, predicted)
  assert confusions["wrong_drum_share_of_onset_errors"] == 3 / 4  # The 4th is a silence.
  assert confusions["same_group_share"] == 1 / 3
  assert sorted(confusions["top_pairs"]) == [(36, 35, 1), (36, 42, 1), (42, 36, 1)]


def test_position_errors_by_bar_and_position():
  from scripts import position_errors  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  target = rng.integers(0, 130, size=(50, 64, 4))
  predicted = target.copy()
  predicted[:, 48:, 0] = 129  # Drums wrong in the last bar only.
  predicted[:, ::16, 1] = 129  # Bass wrong at every bar start only.
  table = position_errors.position_table(target, predicted)
  drums, bass, guitar = table["drums"], table["bass"], table["guitar"]
  assert drums["accuracy_by_bar"][:3] == [1.0] * 3 and drums["accuracy_by_bar"][3] < 0.05
  assert position_errors._verdict(drums) == "errors grow along the window"
  assert bass["accuracy_by_position"][0] < 0.05 and min(bass["accuracy_by_position"][1:]) == 1
  assert bass["note_accuracy_by_position"][0] == 0 and drums["note_accuracy_by_bar"][3] == 0
  assert position_errors._verdict(bass) == "errors sit at bar starts"
  assert position_errors._verdict(guitar) == "errors spread evenly"
  assert guitar["note_accuracy_by_bar"] == [1.0] * 4
  # Strings right in bar 1 only (a flat decoder that holds only its initial state).
  predicted[:, 16:, 3] = 129
  strings = position_errors.position_table(target, predicted)["strings"]
  assert strings["note_first_minus_rest"] > 0.9 and strings["note_spread_after_first_bar"] == 0
  assert position_errors._verdict(strings).startswith("only the first bar is decoded")


def test_validation_curves(trained_run, tmp_path):
  out = tmp_path / "curves.png"
  printed = _run("scripts/validation_curves.py", f"--out={out}",
                 f"--run=the run={trained_run.workdir}", f"--run=again={trained_run.workdir}")
  assert str(out) in printed and out.stat().st_size > 10_000
  result = subprocess.run([sys.executable, "scripts/validation_curves.py", f"--out={out}",
                           f"--run=nothing here={tmp_path}"], cwd=REPO, capture_output=True,
                          text=True, check=False)
  assert result.returncode == 2 and "LABEL=WORKDIR" in result.stderr
  assert "Traceback" not in result.stderr


def test_matmul_peak():
  record = json.loads(_run("benchmarks/matmul_peak.py", "--size=64", "--repeats=2", "--json"))
  assert record["best_gflop_per_s"] > 0


def _generic_kernel():
  from musae_jax import lstm_cpu  # pylint: disable=g-import-not-at-top
  if "generic" not in lstm_cpu.RUNNABLE_ISAS:
    pytest.skip("the fused CPU LSTM kernel is not built (no C++ compiler at install)")


def test_kernel_levels():
  _generic_kernel()
  out = _run("benchmarks/kernel_levels.py", "--level=generic", "--shape=4,2,16", "--rounds=1")
  assert "generic" in out and "forward+backward" in out


def test_step_profile_splits_the_step_into_categories():
  _generic_kernel()
  out = _run("benchmarks/step_profile.py", "--bars=2", "--hidden=16", "--latent=8", "--batch=4",
             "--impl=cpu_fused", "--steps=2", "--warmup=1", "--top=3")
  record = json.loads(out.strip().splitlines()[-1])
  categories = record["categories"]
  # The rows share out the step's wall time, and the fused kernel's calls are found in the trace.
  assert sum(row["ms"] for row in categories.values()) == pytest.approx(
      record["step_ms_trace"], rel=0.02)
  assert categories["custom-call musae_lstm_forward_train"]["ops"] > 0
  assert categories["custom-call musae_lstm_backward"]["ops"] > 0
  assert len(record["top_ops"]) == 3 and "ms/step in the trace" in out


def test_compare_isa(tmp_path):
  """With a stand-in for the PyTorch reference (torch is not a dependency of the project)."""
  _generic_kernel()
  torch_stand_in = tmp_path / "torch_musae.py"
  torch_stand_in.write_text('print(\'{"samples_per_s": 1.0, "step_ms_median": 4.0, '
                            '"gflop_per_s": 1.0}\')\n')
  out = _run("benchmarks/compare_isa.py", "--isa=generic", "--shape=2,16,8,4", "--repeats=1",
             "--steps=1", "--warmup=0", f"--torch_script={torch_stand_in}",
             f"--torch_python={sys.executable}")
  assert "cpu_fused[generic]" in out and "of peak" in out and "to torch_km" in out
