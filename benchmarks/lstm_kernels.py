r"""Times the LSTM recurrence alone with each kernel: forward, and forward + backward.

  python benchmarks/lstm_kernels.py [--shape=32,64,256 --shape=256,16,256] [--impl=cpu_fused
      --impl=scan] [--repeats=20]

A shape is steps,batch,hidden. The timed functions are jitted `lstm.lstm_recurrence` (forward:
all hidden states) and the gradient of a weighted sum of the hidden states with respect to the
input projection and the recurrent weights. GFLOP/s counts the recurrent matmuls only
(2 x T x B x H x 4H for the forward; the backward adds the same for dh and for the weight
gradient). Prints one line per (shape, kernel): median milliseconds and GFLOP/s.
"""

import statistics
import time

from absl import app
from absl import flags

from musae_common import host_memory

_SHAPES = flags.DEFINE_multi_string("shape", ["32,64,256", "256,16,256"], "steps,batch,hidden.")
_IMPLS = flags.DEFINE_multi_string("impl", ["cpu_fused", "scan"], "Kernels to time.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed calls per function (the median is used).")


def _median_seconds(function, *args) -> float:
  import jax  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(function(*args))  # Compiles.
  times = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    jax.block_until_ready(function(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  host_memory.keep_freed_memory()  # As the trainer does; before JAX starts its threads.
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from musae_jax import lstm  # pylint: disable=g-import-not-at-top

  for shape in _SHAPES.value:
    steps, batch, hidden = (int(v) for v in shape.split(","))
    keys = jax.random.split(jax.random.key(0), 3)
    x_proj = 0.5 * jax.random.normal(keys[0], (steps, batch, 4 * hidden))
    w_hh = jax.random.normal(keys[1], (hidden, 4 * hidden)) / hidden**0.5
    h0 = jnp.zeros((batch, hidden))
    weights = jax.random.normal(keys[2], (steps, batch, hidden))
    flops = 2 * steps * batch * hidden * 4 * hidden
    for impl in _IMPLS.value:
      run = lambda x, w, impl=impl: lstm.lstm_recurrence(x, w, h0, h0, impl=impl)[0]
      forward = jax.jit(run)
      gradient = jax.jit(jax.grad(lambda x, w, run=run: jnp.sum(weights * run(x, w)), (0, 1)))
      forward_s = _median_seconds(forward, x_proj, w_hh)
      both_s = _median_seconds(gradient, x_proj, w_hh)
      print(f"T={steps:4d} B={batch:4d} H={hidden:5d} {impl:10s} "
            f"forward {forward_s * 1e3:8.2f} ms ({flops / forward_s / 1e9:5.0f} GFLOP/s)   "
            f"forward+backward {both_s * 1e3:8.2f} ms ({3 * flops / both_s / 1e9:5.0f} GFLOP/s)",
            flush=True)


if __name__ == "__main__":
  app.run(main)
