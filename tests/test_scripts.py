"""Smoke tests of the analysis scripts (scripts/) and the ISA benchmarks (benchmarks/): each runs
as its command line does, on tiny inputs, and prints what it is for."""

import json
import subprocess
import sys

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
                                             ("token_errors", "share of the track's errors")])
def test_run_analysis(trained_run, script, expected):
  out = _run(f"scripts/{script}.py", f"--workdir={trained_run.workdir}",
             f"--data_dir={trained_run.data_dir}", "--split=train")
  assert expected in out


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
