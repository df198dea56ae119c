r"""Measures the machine's matmul peak as XLA reaches it: the yardstick for the step's GFLOP/s.

  python benchmarks/matmul_peak.py [--size=2048] [--repeats=20] [--dtype=float32|bfloat16] [--json]

Times a jitted [size x size] x [size x size] matmul on the CPU backend (all the cores JAX sees,
as the training step uses them), float32 or bf16 inputs with float32 accumulation (the bf16
step's matmuls), and prints its best and median GFLOP/s (2 size^3 flops a call); --json prints
one JSON record instead. benchmarks/compare_isa.py runs it in the same run
as the training steps, so that the step's GFLOP/s can be given as a fraction of it.
"""

import json
import statistics
import time

from absl import app
from absl import flags

_SIZE = flags.DEFINE_integer("size", 2048, "Square matrix size.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed calls (after one compiling call).")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON record.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Input dtype.")


def measure(size: int = 2048, repeats: int = 20, dtype: str = "float32") -> dict:
  """Best and median GFLOP/s of a size x size matmul of dtype inputs, float32 accumulation."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  keys = jax.random.split(jax.random.key(0), 2)
  a = jax.random.normal(keys[0], (size, size), jnp.float32).astype(dtype)
  b = jax.random.normal(keys[1], (size, size), jnp.float32).astype(dtype)
  matmul = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  jax.block_until_ready(matmul(a, b))
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a, b))
    seconds.append(time.perf_counter() - start)
  flops = 2 * size**3
  return {"size": size, "repeats": repeats, "dtype": dtype,
          "devices": jax.devices()[0].device_kind,
          "best_gflop_per_s": round(flops / min(seconds) / 1e9, 1),
          "median_gflop_per_s": round(flops / statistics.median(seconds) / 1e9, 1)}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  record = measure(_SIZE.value, _REPEATS.value, _DTYPE.value)
  if _JSON.value:
    print(json.dumps(record))
  else:
    print(f"{_DTYPE.value} matmul {record['size']}x{record['size']}: best "
          f"{record['best_gflop_per_s']} GFLOP/s, median {record['median_gflop_per_s']} GFLOP/s "
          f"over {record['repeats']} calls")


if __name__ == "__main__":
  app.run(main)
