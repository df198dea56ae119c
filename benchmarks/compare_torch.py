r"""Runs musae_jax's training-step benchmark and the PyTorch reference side by side.

  python benchmarks/compare_torch.py [--shape=2,256,128,64 --shape=16,256,128,16] [--repeats=3]
      [--impl=cpu_fused --impl=scan] [--steps=5 --warmup=2] [--dtype=float32 --dtype=bfloat16]
      [--threads=2]
      [--torch_script=PATH] [--torch_python=PYTHON] [--out=results.jsonl]

A shape is bars,hidden,latent,batch. Each repeat runs every program once, one after the other
(torch, torch_km, then each JAX kernel, for each --dtype), so that every ratio compares runs
made under the same load of the machine; the ratio printed is the median over repeats of ours /
torch in the same repeat, and to the fastest torch program of the repeat (its best setting).
torch_km is torch with the glibc malloc settings musae-jax applies to itself
(--notorch_kept_memory leaves it out). bfloat16 is torch.autocast's mixed precision for the port
and config.model.dtype=bfloat16 for musae-jax (parameters and optimizer state float32 in both);
its programs are named with a "_bf16" suffix.
torch runs with --flush-denormal (XLA flushes denormals too) and --threads as given; JAX uses all
the cores it sees (restrict both with --taskset). torch is not a dependency of the project:
install it next to it (a CPU build) or name another interpreter with --torch_python.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys

from absl import app
from absl import flags

from musae_common import host_memory

REPO = pathlib.Path(__file__).resolve().parents[1]
_DEFAULT_TORCH = pathlib.Path(os.environ.get("MUSAE_SHARED", REPO.parent / "shared")) / "bench"

SHAPES = flags.DEFINE_multi_string("shape", ["2,256,128,64", "16,256,128,16"],
                                   "bars,hidden,latent,batch; repeat the flag for more.")
_IMPLS = flags.DEFINE_multi_string("impl", ["cpu_fused", "scan"], "LSTM kernels of the JAX runs.")
REPEATS = flags.DEFINE_integer("repeats", 3, "Rounds of (torch, each JAX kernel).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per run (the median is used).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps per run.")
_DTYPES = flags.DEFINE_multi_enum("dtype", ["float32"], ["float32", "bfloat16"],
                                  "Compute dtypes; repeat the flag for several.")
_PRIOR = flags.DEFINE_enum("prior", "gaussian", ["gaussian", "flower"], "Prior of the critic.")
_THREADS = flags.DEFINE_integer("threads", 2, "torch intra-op threads.")
_TORCH_SCRIPT = flags.DEFINE_string("torch_script", str(_DEFAULT_TORCH / "torch_musae.py"),
                                    "The PyTorch reference script.")
_TORCH_PYTHON = flags.DEFINE_string("torch_python", sys.executable,
                                    "Python interpreter that has torch.")
OUT = flags.DEFINE_string("out", "", "Also append every run's JSON record to this file.")
_TORCH_KEPT_MEMORY = flags.DEFINE_bool(
    "torch_kept_memory", True, "Also run torch with the glibc malloc settings musae-jax applies to "
    "itself (musae_common/host_memory.py, through the equivalent MALLOC_* environment variables), "
    "as program torch_km, and give our ratio to it too: the fair comparison of the kernels.")
TASKSET = flags.DEFINE_string("taskset", "", "Run both programs on these CPUs only (taskset -c "
                              "LIST), e.g. 1 with --threads=1 for a one-core comparison.")


def run(command: list[str], env: dict | None = None) -> dict:
  if TASKSET.value:
    command = ["taskset", "-c", TASKSET.value] + command
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False,
                          env=None if env is None else {**os.environ, **env})
  lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
  if result.returncode != 0 or not lines:
    raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
  return json.loads(lines[-1])


def torch_command(bars, hidden, latent, batch, dtype="float32"):
  return [_TORCH_PYTHON.value, _TORCH_SCRIPT.value, "--timesteps", str(16 * bars),
          "--hidden", str(hidden), "--latent", str(latent), "--batch", str(batch),
          "--steps", str(_STEPS.value), "--warmup", str(_WARMUP.value),
          "--threads", str(_THREADS.value), "--dtype", dtype, "--flush-denormal",
          "--device", "cpu", "--prior", "mixture" if _PRIOR.value == "flower" else "gaussian"]


def jax_command(bars, hidden, latent, batch, impl, dtype="float32"):
  return [sys.executable, "-m", "musae_jax.benchmark", f"--bars={bars}", f"--hidden={hidden}",
          f"--latent={latent}", f"--batch={batch}", f"--steps={_STEPS.value}",
          f"--warmup={_WARMUP.value}", f"--dtype={dtype}", f"--prior={_PRIOR.value}",
          f"--impl={impl}"]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if not pathlib.Path(_TORCH_SCRIPT.value).exists():
    sys.exit(f"error: --torch_script {_TORCH_SCRIPT.value} does not exist")
  out = open(OUT.value, "a") if OUT.value else None
  suffix = lambda dtype: "_bf16" if dtype == "bfloat16" else ""
  references = [name + suffix(dtype) for dtype in _DTYPES.value
                for name in ["torch"] + (["torch_km"] if _TORCH_KEPT_MEMORY.value else [])]
  impls = [impl + suffix(dtype) for dtype in _DTYPES.value for impl in _IMPLS.value]
  fastest = "fastest torch"
  rows = []
  for shape in SHAPES.value:
    bars, hidden, latent, batch = (int(v) for v in shape.split(","))
    samples = {name: [] for name in references + impls}
    ms = {name: [] for name in samples}
    gflops = {name: [] for name in samples}
    ratios = {(impl, ref): [] for impl in impls for ref in references + [fastest]}
    for repeat in range(REPEATS.value):
      programs = []
      for dtype in _DTYPES.value:
        reference = torch_command(bars, hidden, latent, batch, dtype)
        programs.append(("torch" + suffix(dtype), reference, None))
        if _TORCH_KEPT_MEMORY.value:
          programs.append(("torch_km" + suffix(dtype), reference, host_memory.environment()))
        programs += [(impl + suffix(dtype), jax_command(bars, hidden, latent, batch, impl, dtype),
                      None) for impl in _IMPLS.value]
      this_round = {}
      for name, command, env in programs:
        load = os.getloadavg()[0]
        record = run(command, env)
        record.update(program=name, shape=shape, repeat=repeat, load_before=round(load, 2))
        if out:
          out.write(json.dumps(record) + "\n")
          out.flush()
        this_round[name] = record["samples_per_s"]
        samples[name].append(record["samples_per_s"])
        ms[name].append(record["step_ms_median"])
        gflops[name].append(record.get("gflop_per_s", record.get("achieved_gflop_per_s")))
        print(f"  {shape} repeat {repeat} {name:10s} {record['step_ms_median']:9.1f} ms/step "
              f"{record['samples_per_s']:8.2f} samples/s (load {load:.1f})", flush=True)
      this_round[fastest] = max(this_round[ref] for ref in references)
      for impl, ref in ratios:
        ratios[(impl, ref)].append(this_round[impl] / this_round[ref])
    for name in samples:
      ratio_text = "  ".join(
          f"{statistics.median(r):.2f}x [{min(r):.2f}-{max(r):.2f}]"
          for r in (ratios.get((name, ref)) for ref in references + [fastest]) if r)
      rows.append((shape, name, statistics.median(ms[name]), min(ms[name]), max(ms[name]),
                   statistics.median(samples[name]), statistics.median(gflops[name]),
                   ratio_text))
  print(f"\n{'bars,H,Z,B':16s} {'program':10s} {'ms/step median [min-max]':>28s} "
        f"{'samples/s':>10s} {'GFLOP/s':>8s}  ratio to {' | to '.join(references + [fastest])}: "
        "median [min-max]")
  for shape, name, med, lo, hi, sps, gf, ratio_text in rows:
    print(f"{shape:16s} {name:10s} {med:10.1f} [{lo:7.1f}-{hi:7.1f}] {sps:10.2f} {gf:8.1f}  "
          f"{ratio_text}")


if __name__ == "__main__":
  app.run(main)
