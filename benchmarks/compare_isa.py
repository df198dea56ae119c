r"""The training step per ISA level of the fused CPU LSTM kernel against the PyTorch reference,
next to the machine's fp32 matmul peak measured in the same rounds.

  python benchmarks/compare_isa.py [--isa=avx512 --isa=avx2] [--shape=2,256,128,64
      --shape=16,256,128,16] [--repeats=3] [--out=results.jsonl] [compare_torch.py's flags]

Each round runs, one after the other: benchmarks/matmul_peak.py (XLA's 2048^2 fp32 matmul on all
cores), torch, torch_km (as in compare_torch.py), musae-jax's step with impl=cpu_fused once per
level (MUSAE_LSTM_CPU_ISA=level) and with impl=scan (the pure-JAX kernel, the same on every
level). Prints per shape and program: ms/step median [min-max] over rounds, GFLOP/s (median) and
its fraction of the matmul peak (the best peak run of the rounds), and the ratios of samples/s to
torch, torch_km and scan (median [min-max] over rounds of same-round pairs).

--cap_machine_isa=avx2 runs every program of the rounds as on a CPU without AVX-512 (the machines
most laptops, cloud VMs and AMD CPUs before Zen 4 are): XLA's generated code with
--xla_cpu_max_isa, PyTorch with ATEN_CPU_CAPABILITY, oneDNN and MKL with their own caps, and the
fused kernel at that level. XLA's matmuls need more: YNNPACK, which runs them by default, picks
its kernels from the CPU's features and has no cap (perf shows its AVX-512 kernel under
--xla_cpu_max_isa), so its dot and elementwise fusions are turned off and XLA's dots go to
oneDNN's gemm, which honours ONEDNN_MAX_CPU_ISA. Its reductions stay on: they are memory-bound,
so the ISA hardly changes them, and without YNNPACK XLA lowers a large reduction (the bias
gradients, sums of [T, B, 4H] over T and B) to reduce-window loops that took ~10% of the capped
2-bar step (775 vs 700 ms, Intel Xeon), a cost an AVX2 machine running YNNPACK would not pay.
Without the cap, a forced avx2 kernel level is measured inside programs that still use AVX-512
for everything else.

--cap_machine_isa=avx does the same for a CPU with AVX but neither AVX2 nor FMA (Intel Sandy and
Ivy Bridge; jaxlib needs AVX, so no x86 CPU that runs JAX has less): PyTorch then runs its
"default" (non-AVX2) kernels. Capped, the fused kernel runs at the cap's level unless --isa names
levels (e.g. --cap_machine_isa=avx --isa=avx --isa=generic).
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys

from absl import app
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import compare_torch  # pylint: disable=g-import-not-at-top,wrong-import-position
from musae_common import host_memory  # pylint: disable=g-import-not-at-top,wrong-import-position

_ISAS = flags.DEFINE_multi_string("isa", ["avx512", "avx2"],
                                  "MUSAE_LSTM_CPU_ISA levels of the cpu_fused runs.")

# Per level, the environment that keeps every library of the rounds at or below it (each reads
# its own variable at start-up; XLA's flags are appended to any the caller set).
_CAPS = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own vectorised kernels
        "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (PyTorch's mkldnn paths; XLA's dots below)
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # MKL's sgemm
        # XLA's generated code; YNNPACK for reductions only, as it honours no cap (see the
        # docstring).
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX2 --xla_cpu_experimental_ynn_fusion_type=reduce",
    },
    "avx": {
        "ATEN_CPU_CAPABILITY": "default",  # PyTorch has no AVX-only level: its baseline
        "ONEDNN_MAX_CPU_ISA": "AVX",
        "MKL_ENABLE_INSTRUCTIONS": "AVX",
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX --xla_cpu_experimental_ynn_fusion_type=reduce",
    },
}
_CAP_MACHINE_ISA = flags.DEFINE_enum(
    "cap_machine_isa", "", [""] + sorted(_CAPS),
    "Cap every program (XLA, PyTorch, MKL, oneDNN, the fused kernel) at this level.")


def _cap_machine(isa: str) -> list[str]:
  """Sets this process's environment (inherited by every program of the rounds) so that nothing
  uses instructions above `isa`; returns the fused kernel's levels to measure: --isa's when given,
  else the cap's own."""
  if not isa:
    return _ISAS.value
  for name, value in _CAPS[isa].items():
    if name == "XLA_FLAGS":
      value = f"{os.environ.get(name, '')} {value}".strip()
    os.environ[name] = value
  return _ISAS.value if _ISAS.present else [isa]


def _peak() -> dict:
  command = [sys.executable, str(compare_torch.REPO / "benchmarks" / "matmul_peak.py"), "--json"]
  if compare_torch.TASKSET.value:
    command = ["taskset", "-c", compare_torch.TASKSET.value] + command
  result = subprocess.run(command, cwd=compare_torch.REPO, capture_output=True, text=True,
                          check=True)
  return json.loads(result.stdout.strip().splitlines()[-1])


def _spread(values) -> str:
  return f"{statistics.median(values):.2f}x [{min(values):.2f}-{max(values):.2f}]"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  out = open(compare_torch.OUT.value, "a") if compare_torch.OUT.value else None
  isas = _cap_machine(_CAP_MACHINE_ISA.value)
  print(f"CPU: {_cpu_model()}", flush=True)
  if _CAP_MACHINE_ISA.value:
    print(f"Every program capped at {_CAP_MACHINE_ISA.value}: " + ", ".join(
        f"{k}={os.environ[k]}" for k in _CAPS[_CAP_MACHINE_ISA.value]), flush=True)
  peaks, records = [], []
  for shape in compare_torch.SHAPES.value:
    bars, hidden, latent, batch = (int(v) for v in shape.split(","))
    for repeat in range(compare_torch.REPEATS.value):
      peak = _peak()
      peak.update(shape=shape, repeat=repeat)
      peaks.append(peak)
      print(f"  {shape} repeat {repeat} matmul peak {peak['best_gflop_per_s']} GFLOP/s",
            flush=True)
      torch_command = compare_torch.torch_command(bars, hidden, latent, batch)
      programs = [("torch", torch_command, None),
                  ("torch_km", torch_command, host_memory.environment())]
      programs += [(f"cpu_fused[{isa}]",
                    compare_torch.jax_command(bars, hidden, latent, batch, "cpu_fused"),
                    {"MUSAE_LSTM_CPU_ISA": isa}) for isa in isas]
      programs.append(("scan", compare_torch.jax_command(bars, hidden, latent, batch, "scan"),
                       None))
      for name, command, env in programs:
        load = os.getloadavg()[0]
        record = compare_torch.run(command, env)
        record.update(program=name, shape=shape, repeat=repeat, load_before=round(load, 2))
        records.append(record)
        if out:
          out.write(json.dumps(record) + "\n")
          out.flush()
        print(f"  {shape} repeat {repeat} {name:16s} {record['step_ms_median']:9.1f} ms/step "
              f"{record['samples_per_s']:8.2f} samples/s (load {load:.1f})", flush=True)
    if out:
      for peak in peaks:
        out.write(json.dumps({"matmul_peak": peak}) + "\n")
  for shape in compare_torch.SHAPES.value:
    shape_peaks = [p["best_gflop_per_s"] for p in peaks if p["shape"] == shape]
    peak = max(shape_peaks)
    print(f"\n{shape}: fp32 matmul peak {peak:.0f} GFLOP/s (XLA 2048^2, best of rounds: "
          f"{', '.join(f'{p:.0f}' for p in shape_peaks)})")
    by = {}
    for r in records:
      if r["shape"] == shape:
        by.setdefault(r["program"], {})[r["repeat"]] = r
    for program, runs in by.items():
      ms = [r["step_ms_median"] for r in runs.values()]
      gf = statistics.median(r.get("gflop_per_s", r.get("achieved_gflop_per_s"))
                             for r in runs.values())
      ratios = []
      for ref in ("torch", "torch_km", "scan"):
        if program in ("torch", "torch_km", "scan"):
          continue
        pairs = [runs[k]["samples_per_s"] / by[ref][k]["samples_per_s"] for k in runs]
        ratios.append(f"to {ref} {_spread(pairs)}")
      print(f"  {program:16s} {statistics.median(ms):7.0f} ms [{min(ms):.0f}-{max(ms):.0f}] "
            f"{statistics.median(r['samples_per_s'] for r in runs.values()):7.2f} samples/s "
            f"{gf:6.1f} GFLOP/s = {gf / peak:4.0%} of peak  {'  '.join(ratios)}")


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines()
                    if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags_ = " ".join(f for f in fields.get("flags", "").split()
                      if f.startswith(("avx", "fma", "sse4")))
    return (f"{fields.get('model name')} (family {fields.get('cpu family')} model "
            f"{fields.get('model')}), {os.cpu_count()} CPUs, {flags_}")
  except OSError:
    return "unknown"


if __name__ == "__main__":
  app.run(main)
