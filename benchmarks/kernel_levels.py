r"""Times the fused CPU LSTM kernel's ISA levels against each other, alternating, in one process.

  python benchmarks/kernel_levels.py [--level=avx512 --level=avx2] [--shape=32,64,256
      --shape=256,16,256] [--rounds=10] [--bf16] [--extra=NAME:PATH:LEVEL ...]

Loads the built library once per level (each from its own copy of the file: loading one path
twice would give one library, with one level) and, for each shape steps,batch,hidden, times the
FFI forward call and forward + backward (the kernel alone: no XLA around it but the calls; with
--bf16 its bf16 matmuls, e.g. --level=amx_bf16 --level=avx512_bf16), in
rounds that alternate between the levels, so that a drifting machine affects them alike. Prints
min and median milliseconds and GFLOP/s (the recurrent matmuls, as benchmarks/lstm_kernels.py
counts them). --extra adds another build of the library (e.g. one from an older source, with the
same FFI signature: the bf16 attribute since commit 7d34ae3) as NAME, run at LEVEL (a level name,
or "native" to leave it at its default).
"""

import ctypes
import pathlib
import shutil
import statistics
import tempfile
import time

from absl import app
from absl import flags

from musae_common import host_memory

_LEVELS = flags.DEFINE_multi_string("level", ["avx512", "avx2"], "Levels of the built library.")
_SHAPES = flags.DEFINE_multi_string("shape", ["32,64,256", "256,16,256"], "steps,batch,hidden.")
_ROUNDS = flags.DEFINE_integer("rounds", 10, "Alternating rounds (one call of each per round).")
_EXTRA = flags.DEFINE_multi_string("extra", [], "NAME:PATH:LEVEL of another build to time too.")
_BF16 = flags.DEFINE_bool("bf16", False, "bf16 matmuls (at levels that have them) instead of "
                          "float32 ones.")


def _load(path: str, level: str, directory: str) -> ctypes.CDLL:
  copy = pathlib.Path(tempfile.mkdtemp(dir=directory)) / pathlib.Path(path).name
  shutil.copy(path, copy)
  library = ctypes.cdll.LoadLibrary(str(copy))
  if level != "native":
    library.musae_lstm_cpu_set_isa.argtypes = [ctypes.c_char_p]
    if library.musae_lstm_cpu_set_isa(level.encode()) != 1:
      raise app.UsageError(f"{path} cannot run level {level} on this CPU")
  return library


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  host_memory.keep_freed_memory()  # As the trainer does; before JAX starts its threads.
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from musae_jax import lstm_cpu  # pylint: disable=g-import-not-at-top

  builds = [(level, str(lstm_cpu.library_path()), level) for level in _LEVELS.value]
  builds += [tuple(spec.rsplit(":", 2)) for spec in _EXTRA.value]
  with tempfile.TemporaryDirectory() as directory:
    targets = []
    for index, (name, path, level) in enumerate(builds):
      library = _load(path, level, directory)
      for symbol in ("MusaeLstmForwardTrain", "MusaeLstmBackward"):
        jax.ffi.register_ffi_target(f"musae_levels_{index}_{symbol}",
                                    jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
      targets.append((name, index))
    for shape in _SHAPES.value:
      steps, batch, hidden = (int(v) for v in shape.split(","))
      keys = jax.random.split(jax.random.key(0), 3)
      x_proj = 0.5 * jax.random.normal(keys[0], (steps, batch, 4 * hidden))
      w_hh = jax.random.normal(keys[1], (hidden, 4 * hidden)) / hidden**0.5
      zeros = jnp.zeros((batch, hidden))
      bias = jnp.zeros((4 * hidden,))
      d_hs = jax.random.normal(keys[2], (steps, batch, hidden))
      state = jax.ShapeDtypeStruct((steps, batch, hidden), jnp.float32)
      gates = jax.ShapeDtypeStruct((steps, batch, 4 * hidden), jnp.float32)
      attributes = {"reverse": False, "bf16": _BF16.value}  # Forward in time.
      functions = []
      for name, index in targets:
        forward = jax.ffi.ffi_call(f"musae_levels_{index}_MusaeLstmForwardTrain",
                                   [state, state, gates])
        backward = jax.ffi.ffi_call(
            f"musae_levels_{index}_MusaeLstmBackward",
            [gates, jax.ShapeDtypeStruct(bias.shape, jnp.float32),
             jax.ShapeDtypeStruct(w_hh.shape, jnp.float32),
             jax.ShapeDtypeStruct(zeros.shape, jnp.float32),
             jax.ShapeDtypeStruct(zeros.shape, jnp.float32)])

        def both(x, w, forward=forward, backward=backward):
          hs, cs, g = forward(x, bias, w, zeros, zeros, **attributes)
          return backward(w, zeros, hs, g, cs, zeros, d_hs, zeros, zeros, **attributes)

        functions.append((name, {
            "forward": jax.jit(lambda x, w, forward=forward: forward(x, bias, w, zeros, zeros,
                                                                     **attributes)[0]),
            "forward+backward": jax.jit(both)}))
      seconds = {(name, kind): [] for name, fns in functions for kind in fns}
      for _, fns in functions:
        for fn in fns.values():
          jax.block_until_ready(fn(x_proj, w_hh))  # Compiles.
      for _ in range(_ROUNDS.value):
        for name, fns in functions:
          for kind, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(x_proj, w_hh))
            seconds[(name, kind)].append(time.perf_counter() - start)
      flops = 2 * steps * batch * hidden * 4 * hidden
      for name, _ in functions:
        parts = []
        for kind, factor in (("forward", 1), ("forward+backward", 3)):
          times = seconds[(name, kind)]
          parts.append(f"{kind} {min(times) * 1e3:7.2f} ms (median "
                       f"{statistics.median(times) * 1e3:7.2f}, "
                       f"{factor * flops / min(times) / 1e9:4.0f} GFLOP/s)")
        print(f"T={steps:4d} B={batch:4d} H={hidden:5d} {name:12s} " + "   ".join(parts),
              flush=True)


if __name__ == "__main__":
  app.run(main)
