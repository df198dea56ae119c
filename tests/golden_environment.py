"""The parts of the machine that XLA's CPU code depends on, to tell when bitwise comparisons with
parameters recorded elsewhere are meaningful (tests/test_compat.py)."""

import platform

import jax
import jaxlib

# CPU features that change the code XLA's CPU backend generates (vector width, FMA, dot kernels).
_FEATURES = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni",
             "avx512_bf16", "amx_bf16", "amx_tile", "asimd", "sve")


def cpu_features() -> list[str]:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      flags = next((line.split(":", 1)[1].split() for line in f
                    if line.startswith(("flags", "Features"))), [])
  except OSError:
    flags = []
  return sorted(set(flags) & set(_FEATURES))


# The /proc/cpuinfo fields that name the CPU itself: XLA's CPU code and its dot libraries also
# choose by microarchitecture (two CPUs with the same feature flags, e.g. AMD Zen 4 and Zen 5,
# trained to different parameters), so identity is only expected on the same model.
_CPU_MODEL_FIELDS = ("vendor_id", "cpu family", "model", "CPU implementer", "CPU part")


def cpu_model() -> dict[str, str]:
  fields = {}
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if not line.strip():
          break  # the first processor's block is enough
        key, _, value = line.partition(":")
        if key.strip() in _CPU_MODEL_FIELDS:
          fields[key.strip()] = value.strip()
  except OSError:
    pass
  return fields


def environment() -> dict:
  return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "machine": platform.machine(),
          "cpu": cpu_model(), "cpu_features": cpu_features()}


if __name__ == "__main__":
  import json  # pylint: disable=g-import-not-at-top
  print(json.dumps(environment(), indent=1))
