"""keep_freed_memory: large blocks freed by one step are reused by the next without page faults."""

import os
import platform
import subprocess
import sys

import pytest

from musae_common import host_memory

_PROGRAM = """
import resource, sys
import numpy as np
from musae_common import host_memory
applied = host_memory.keep_freed_memory()

def faults_of_a_step():
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(4):  # Like XLA's per-step buffers: allocated, written, freed.
    block = np.ones(64 * 2**20 // 4, np.float32)
    del block
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of_a_step()  # The first step grows the heap.
print(applied, faults_of_a_step())
"""


def _run(keep: str, extra_env: dict[str, str] | None = None) -> tuple[bool, int]:
  env = {**os.environ, "MUSAE_KEEP_FREED_MEMORY": keep, **(extra_env or {})}
  out = subprocess.run([sys.executable, "-c", _PROGRAM], env=env, capture_output=True,
                       text=True, check=True).stdout.split()
  return out[0] == "True", int(out[1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc malloc settings")
def test_freed_blocks_are_reused_without_page_faults():
  applied, faults = _run("1")
  not_applied, default_faults = _run("0")
  assert applied and not not_applied
  # 4 blocks of 64 MiB: thousands of faults when glibc returns them (over a hundred even with
  # 2 MiB transparent huge pages), none when it keeps them.
  assert default_faults > 100, default_faults
  assert faults < default_faults / 10, (faults, default_faults)
  # The same settings as environment variables (how compare_torch.py gives them to torch).
  _, env_faults = _run("0", host_memory.environment())
  assert env_faults < default_faults / 10, (env_faults, default_faults)
