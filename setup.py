"""Builds the optional fused CPU LSTM kernel; all other metadata is in pyproject.toml.

`pip install -e .` (or `python setup.py build_ext --inplace` after editing csrc/) compiles
csrc/lstm_cpu*.cc into musae_jax/_lstm_cpu*.so. The build is optional: without a C++17 compiler
the install still succeeds and musae_jax falls back to the pure-JAX LSTM.

One build runs on any CPU of its architecture: the kernel's vector code is compiled for several
instruction-set levels (AVX-512 with AMX-BF16 tiles where the compiler has their intrinsics,
AVX-512 with bf16 dot instructions, AVX-512, AVX2 + FMA, AVX and a generic one on x86-64; the
generic one on other architectures, aarch64 included), each through
target attributes in its own source file, and the library picks the widest level the CPU runs
when it loads (MUSAE_LSTM_CPU_ISA forces one; see musae_jax/lstm_cpu.py). The command line therefore carries no -march: a build made on one machine
runs on another. MUSAE_CPU_ARCH (e.g. native) adds -march=... for builds meant for one machine
only; it changes the generic level and the code around the kernels, never which level runs.
"""

import os

from setuptools import Extension, setup


def _xla_ffi_include_dir() -> str:
  # The installed jaxlib's own headers when the build can see it; otherwise the copy of the same
  # header-only XLA FFI API kept in csrc/third_party (an isolated build environment has no jax).
  try:
    import jax.ffi  # pylint: disable=g-import-not-at-top
    return jax.ffi.include_dir()
  except ImportError:
    return os.path.join("csrc", "third_party")


_ARCH = os.environ.get("MUSAE_CPU_ARCH", "")

LSTM_CPU = Extension(
    "musae_jax._lstm_cpu",
    # The dispatcher, then one file per instruction-set level (all include lstm_cpu_kernel.h).
    sources=[os.path.join("csrc", name) for name in (
        "lstm_cpu.cc", "lstm_cpu_amx_bf16.cc", "lstm_cpu_avx512_bf16.cc", "lstm_cpu_avx512.cc",
        "lstm_cpu_avx2.cc", "lstm_cpu_avx.cc", "lstm_cpu_generic.cc")],
    depends=[os.path.join("csrc", name) for name in ("lstm_cpu_common.h", "lstm_cpu_kernel.h")],
    include_dirs=[_xla_ffi_include_dir(), "csrc"],
    language="c++",
    extra_compile_args=[
        "-std=c++17", "-O3", "-ffp-contract=fast", "-fno-math-errno",
    ] + ([f"-march={_ARCH}"] if _ARCH else []),
    optional=True,
)

setup(ext_modules=[LSTM_CPU])
