"""benchmarks/gpu_check.py in its dry run: the GPU check's own code path, at tiny sizes on the CPU,
so that the one command prepared for a GPU machine works the moment one is available."""

import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _check(out, *flags):
  result = subprocess.run([sys.executable, "benchmarks/gpu_check.py", f"--out={out}", *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  return json.loads((out / "gpu_check.json").read_text())


def test_dry_run_measures_every_kernel_and_trains_the_paper_config(tmp_path, demo_data_dir):
  wheels = tmp_path / "wheels"
  wheels.mkdir()
  out = tmp_path / "out"
  report = _check(out, "--dry_run", f"--data_dir={demo_data_dir}", f"--wheels={wheels}")
  assert report["dry_run"] and report["environment"]["backend"] == "cpu"
  assert report["installed_wheels"] == []
  rows = {(r["shape"], r["program"], r["kernel"], r["dtype"], bool(r["xla_flags"])): r
          for r in report["speed"]}
  for shape in ("2bar", "16bar"):
    for kernel, dtype, command_buffers in (("scan", "float32", False), ("scan", "bfloat16", False),
                                           ("cudnn", "float32", False),
                                           ("scan", "bfloat16", True)):
      row = rows[(shape, "ours", kernel, dtype, command_buffers)]
      assert row["steps_per_s"] > 0 and row["tflop_per_s"] > 0, row
      assert row["record"]["impl"] == kernel
    # The port runs where torch is installed; elsewhere its rows say why they are empty.
    for dtype in ("float32", "bfloat16"):
      torch_row = rows[(shape, "torch", "torch", dtype, False)]
      assert torch_row["steps_per_s"] or "not available" in torch_row["record"]["skipped"]
  train = report["train"]
  assert train["validation_step"] == train["steps"] == 20 and "error" not in train
  assert 0.0 <= train["validation"]["accuracy/mean"] <= 1.0
  assert train["validation"]["num_windows"] > 0
  metrics = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
  assert metrics[-1]["step"] == 20
  # What comes back from the GPU machine: these two files, nothing else.
  assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "train_metrics.jsonl"]
  assert report["spent_s"] <= report["budget_s"]


def test_items_that_do_not_fit_the_budget_are_recorded_as_skipped(tmp_path, demo_data_dir):
  report = _check(tmp_path, "--dry_run", f"--data_dir={demo_data_dir}", "--budget_s=5")
  assert len(report["speed"]) == 12
  assert all("budget" in row["record"]["skipped"] for row in report["speed"]
             if row["program"] == "ours")
  assert "budget" in report["train"]["error"]
