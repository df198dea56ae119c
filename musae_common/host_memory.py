"""Keeps freed host memory in the process, so a CPU training step does not page-fault its buffers.

XLA's CPU runtime allocates a step's temporary buffers (activations, LSTM gates, gradients:
about 300 MB for the 2-bar benchmark step) with malloc at every execution and frees them after.
glibc hands such memory back to the kernel (large blocks are mmap-ed, and the per-thread arenas
that XLA's worker threads allocate from release whole heaps), so the next step touches fresh
pages again: measured about 75,000 page faults and 10% of the step time on a 2-core machine.

keep_freed_memory() sets glibc's malloc to serve every block from one arena that never shrinks:
after the first steps the process reuses the same pages. It has to run before XLA starts its
threads (before the first JAX computation), so the entry points (training, benchmark, tools) call
it first thing. The process keeps its peak host memory; elsewhere than on glibc it does nothing.
The environment variable MUSAE_KEEP_FREED_MEMORY=0 turns it off.
"""

import ctypes
import functools
import os
import platform

# (mallopt parameter from glibc's malloc.h, the same setting's environment variable, value).
_SETTINGS = (
    # One arena: glibc deletes idle per-thread heaps whatever the trim threshold.
    (-8, "MALLOC_ARENA_MAX", 1),  # M_ARENA_MAX
    # No mmap-ed blocks: those go back to the kernel on every free.
    (-4, "MALLOC_MMAP_MAX_", 0),  # M_MMAP_MAX
    # Never return the top of the heap (2 GiB, the largest value mallopt takes).
    (-1, "MALLOC_TRIM_THRESHOLD_", 2**31 - 1),  # M_TRIM_THRESHOLD
)


def environment() -> dict[str, str]:
  """The same settings as glibc environment variables, for a program started from here (e.g.
  the PyTorch reference in benchmarks/compare_torch.py); glibc reads them at start-up."""
  return {name: str(value) for _, name, value in _SETTINGS}


@functools.cache  # Once per process; later calls tell whether it was applied.
def keep_freed_memory() -> bool:
  """Configures glibc malloc as described above; returns whether it was applied."""
  if os.environ.get("MUSAE_KEEP_FREED_MEMORY", "1") == "0":
    return False
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return False
  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:
    return False
  return all(libc.mallopt(parameter, value) == 1 for parameter, _, value in _SETTINGS)
