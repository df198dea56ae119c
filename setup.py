"""Builds the optional fused CPU LSTM kernel; all other metadata is in pyproject.toml.

`pip install -e .` (or `python setup.py build_ext --inplace` after editing csrc/) compiles
csrc/lstm_cpu.cc into musae_jax/_lstm_cpu*.so. The build is optional: without a C++17 compiler
the install still succeeds and musae_jax falls back to the pure-JAX LSTM.

The kernel is compiled for the building machine's CPU (-march=native, it is meant to be built
where it runs); set MUSAE_CPU_ARCH (e.g. x86-64-v3) for a more portable build.
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


LSTM_CPU = Extension(
    "musae_jax._lstm_cpu",
    sources=[os.path.join("csrc", "lstm_cpu.cc")],
    include_dirs=[_xla_ffi_include_dir()],
    language="c++",
    extra_compile_args=[
        "-std=c++17", "-O3", f"-march={os.environ.get('MUSAE_CPU_ARCH', 'native')}",
        "-ffp-contract=fast", "-fno-math-errno",
    ],
    optional=True,
)

setup(ext_modules=[LSTM_CPU])
