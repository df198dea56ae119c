"""The fused CPU LSTM kernel (csrc/lstm_cpu.cc) behind musae_jax.lstm's recurrence interface.

musae_jax.lstm registers it as "cpu_fused" (first choice of impl="auto" when the library is
built) and imports this module on first use; this module registers nothing itself. The compiled
library is optional (setup.py builds it at install time when a C++ compiler is there); without
it "auto" stays on the pure-JAX scan and one notice is logged.

The kernel runs only the sequential part, like every kernel of the interface: the forward call adds
the bias to x_proj as it reads it and keeps the activated gates and cell states; the backward call
walks time back, producing the pre-activation gate gradients (the gradient of x_proj), and then the
recurrent weight gradient as one matmul over all T*B rows, with the bias gradient (their sum) read
from the same rows. Parameters are the same plain arrays whatever the kernel, so checkpoints do not
depend on it. It computes in float32, or, for a bfloat16 w_hh (config.model.dtype=bfloat16), runs
its three recurrent matmuls on bf16 operands with float32 accumulation at a level with bf16 dot
instructions ("avx512_bf16": AMD Zen 4 and later, Intel Cooper Lake and later; "amx_bf16", the
same matmuls on AMX tiles: Intel Sapphire Rapids and later, where they run 3.5x faster than at
"avx512_bf16" and the bf16 training step 2-2.4x faster than float32's); at other levels a
bfloat16 w_hh runs the float32 code, which is exact for it (BF16_MATMULS says which). Whether
bf16 matmuls pay depends on more than the instructions (BF16_PAYS): AMX tiles always do; without
them VDPBF16PS does 2x the multiply-adds a second of float32 FMAs on AMD Zen 4 but 0.5x on an
Intel Xeon whose AMX the machine hides, so the library measures that ratio when it loads. Hidden
sizes the vector width does not divide, non-CPU backends and runs over several devices use the
scan kernel instead.

Instruction sets: the library holds the kernel compiled for several levels (on x86-64:
"amx_bf16" for AVX-512 with bf16 dot instructions and AMX-BF16 tiles, "avx512_bf16" for AVX-512
with bf16 dot instructions, "avx512", "avx2" for AVX2 + FMA, "avx" for AVX without them, and
"generic"; elsewhere "generic") and picks the widest this CPU runs when it loads (jaxlib itself
needs AVX, so on x86-64 "generic" only runs when forced; "amx_bf16" also needs Linux to grant the
process the tile state, which the library asks for). The environment variable
MUSAE_LSTM_CPU_ISA (amx_bf16, avx512_bf16, avx512, avx2, avx, generic;
"auto" or unset: the widest) forces a level, e.g. to test or time another path on one machine;
forcing a level this CPU cannot run, or an unknown name, raises errors.UserError at import. ISA is
the level in use (logged once), VECTOR_WIDTH its vector width in floats.
"""

import ctypes
import functools
import importlib.machinery
import os
import pathlib

from absl import logging
import jax
import jax.numpy as jnp

from musae_common import errors

ISA_ENV = "MUSAE_LSTM_CPU_ISA"
_LIBRARY_STEM = "_lstm_cpu"
_FORWARD_TRAIN = "musae_lstm_forward_train"
_FORWARD_INFER = "musae_lstm_forward_infer"
_BACKWARD = "musae_lstm_backward"
_TRANSPOSE_TO_BF16 = "musae_transpose_to_bf16"


def library_path() -> pathlib.Path | None:
  """Where the compiled kernel is, or None when it was not built."""
  package = pathlib.Path(__file__).resolve().parent
  for suffix in importlib.machinery.EXTENSION_SUFFIXES:
    path = package / f"{_LIBRARY_STEM}{suffix}"
    if path.exists():
      return path
  return None


def _levels(library: ctypes.CDLL) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """The levels the library has and those of them this CPU runs, widest first."""
  compiled = tuple(library.musae_lstm_cpu_compiled_isas().decode().split(","))
  return compiled, tuple(name for name in compiled
                         if library.musae_lstm_cpu_isa_runs(name.encode()) == 1)


def _select_isa(library: ctypes.CDLL) -> str:
  """Applies MUSAE_LSTM_CPU_ISA (when set) to the library; returns the level in use."""
  compiled, runs = _levels(library)
  forced = os.environ.get(ISA_ENV, "").strip().lower()
  if forced and forced != "auto":
    status = library.musae_lstm_cpu_set_isa(forced.encode())
    if status != 1:
      reason = ("is not a level of this build" if status < 0 else
                "needs instructions this CPU does not have")
      raise errors.UserError(
          f"{ISA_ENV}={forced} {reason}: the fused CPU LSTM kernel has {', '.join(compiled)}, "
          f"of which this CPU runs {', '.join(runs)} (unset {ISA_ENV}, or set it to auto, for "
          "the widest).")
  return library.musae_lstm_cpu_isa().decode()


def _load() -> tuple[int, str, bool, float | None, tuple[str, ...], tuple[str, ...]] | None:
  """Loads the library, chooses its ISA level and registers its FFI targets.

  Returns the level's vector width (floats), name and whether it has bf16 matmuls, the bf16 dot
  speedup the library measured (None where it has none), the levels the library has and those
  this CPU runs.
  """
  path = library_path()
  if path is None:
    logging.warning("The fused CPU LSTM kernel is not built (install with a C++17 compiler: "
                 "`pip install -e .`); LSTMs use the pure-JAX scan.")
    return None
  try:
    library = ctypes.cdll.LoadLibrary(str(path))
  except OSError as error:
    logging.warning("Cannot load the fused CPU LSTM kernel %s (%s); LSTMs use the pure-JAX scan.",
                    path, error)
    return None
  if not hasattr(library, "musae_lstm_cpu_bf16_dot_speedup"):
    # A library built by an earlier version (it lacks this version's newest entry point), e.g. a
    # checkout updated without reinstalling: its handlers may take other operands and attributes
    # than this module passes, and it cannot tell whether bf16 pays.
    logging.warning("The fused CPU LSTM kernel %s was built by an earlier version of musae-jax; "
                    "LSTMs use the pure-JAX scan until it is rebuilt with `pip install -e .`.",
                    path)
    return None
  for target, symbol in ((_FORWARD_TRAIN, "MusaeLstmForwardTrain"),
                         (_FORWARD_INFER, "MusaeLstmForwardInfer"),
                         (_BACKWARD, "MusaeLstmBackward"),
                         (_TRANSPOSE_TO_BF16, "MusaeTransposeToBf16")):
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                platform="cpu")
  library.musae_lstm_cpu_isa.restype = ctypes.c_char_p
  library.musae_lstm_cpu_compiled_isas.restype = ctypes.c_char_p
  library.musae_lstm_cpu_set_isa.argtypes = [ctypes.c_char_p]
  library.musae_lstm_cpu_isa_runs.argtypes = [ctypes.c_char_p]
  # Before any kernel runs (the handlers only look the level up when called): the level decides
  # the vector width, and so which shapes JAX sends to the kernel.
  isa = _select_isa(library)
  width = int(library.musae_lstm_cpu_vector_width())
  bf16_matmuls = library.musae_lstm_cpu_bf16_matmuls() == 1
  library.musae_lstm_cpu_bf16_dot_speedup.restype = ctypes.c_double
  speedup = float(library.musae_lstm_cpu_bf16_dot_speedup()) or None  # 0: no AVX512-BF16.
  logging.info("Fused CPU LSTM kernel: %s level (%d floats a vector)%s%s.", isa, width,
               f", forced by {ISA_ENV}" if os.environ.get(ISA_ENV, "auto") != "auto" else "",
               f"; bf16 dots {speedup:.2f}x the float32 FMA rate" if speedup else "")
  return (width, isa, bf16_matmuls, speedup) + _levels(library)


# Without AMX tiles, bf16 matmuls pay where VDPBF16PS does at least this many times the
# multiply-adds a second of float32 FMAs (~2 on AMD Zen 4, whose bf16 step is 1.6x float32's;
# ~0.5 on an Intel Xeon without AMX, whose bf16 step is 0.7x float32's; BENCHMARKS.md).
MIN_BF16_DOT_SPEEDUP = 1.5

_LOADED = _load()
# The level in use, its width and whether it has bf16 matmuls; VDPBF16PS's multiply-add rate over
# float32 FMAs' on this CPU (None without AVX512-BF16); the levels the library has and those this
# CPU runs (widest first). None, False and () when the library is not there.
VECTOR_WIDTH, ISA, BF16_MATMULS, BF16_DOT_SPEEDUP, COMPILED_ISAS, RUNNABLE_ISAS = (
    _LOADED if _LOADED is not None else (None, None, False, None, (), ()))
AVAILABLE = VECTOR_WIDTH is not None
# Whether the level's bf16 matmuls are faster than its float32 ones: config.model.dtype="auto"
# picks bfloat16 only then.
BF16_PAYS = BF16_MATMULS and (ISA == "amx_bf16" or
                              (BF16_DOT_SPEEDUP or 0.0) >= MIN_BF16_DOT_SPEEDUP)


def _forward(x_proj, bias, w_hh, h0, c0, reverse: bool, bf16: bool, num_steps: int,
             keep_gates: bool):
  """The forward FFI call: hs, cs [T, B, H] (and the activated gates [T, B, 4H])."""
  batch, hidden = h0.shape
  state = jax.ShapeDtypeStruct((num_steps, batch, hidden), jnp.float32)
  results = [state, state]
  if keep_gates:
    gates = w_hh.shape[-1]  # 4H: w_hh is [H, 4H].
    results.append(jax.ShapeDtypeStruct((num_steps, batch, gates), jnp.float32))
  target = _FORWARD_TRAIN if keep_gates else _FORWARD_INFER
  # Under jax.vmap every operand gets the mapped axis in front; the kernel treats leading axes
  # as independent recurrences.
  call = jax.ffi.ffi_call(target, results, vmap_method="broadcast_all")
  return call(x_proj, bias, w_hh, h0, c0, reverse=reverse, bf16=bf16)


def _last(hs, cs, reverse: bool):
  # The state after the last processed step: step 0 when running in reverse.
  index = 0 if reverse else -1
  return hs[index], cs[index]


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8))
def _fused(x_proj, bias, w_hh, h0, c0, reverse: bool, bf16: bool, num_steps: int,
           constant: bool):
  del constant  # Only the backward pass needs it.
  hs, cs = _forward(x_proj, bias, w_hh, h0, c0, reverse, bf16, num_steps, keep_gates=False)
  return hs, _last(hs, cs, reverse)


def _fused_fwd(x_proj, bias, w_hh, h0, c0, reverse, bf16, num_steps, constant):
  del constant
  hs, cs, gates = _forward(x_proj, bias, w_hh, h0, c0, reverse, bf16, num_steps,
                           keep_gates=True)
  return (hs, _last(hs, cs, reverse)), (bias, w_hh, h0, c0, hs, cs, gates)


def _fused_bwd(reverse, bf16, num_steps, constant, residuals, cotangents):
  bias, w_hh, h0, c0, hs, cs, gates = residuals
  d_hs, (d_h_last, d_c_last) = cotangents
  batch = h0.shape[0]
  # The kernel also returns the bias and recurrent weight gradients (one matmul after its time
  # loop) and, for a constant input, d_x_proj already summed over time.
  d_x_steps = 1 if constant else num_steps
  call = jax.ffi.ffi_call(
      _BACKWARD,
      [jax.ShapeDtypeStruct((d_x_steps, batch, w_hh.shape[-1]), jnp.float32),
       jax.ShapeDtypeStruct(bias.shape, jnp.float32),
       jax.ShapeDtypeStruct(w_hh.shape, jnp.float32),
       jax.ShapeDtypeStruct(h0.shape, jnp.float32),
       jax.ShapeDtypeStruct(c0.shape, jnp.float32)],
      vmap_method="broadcast_all")
  f32 = lambda x: x.astype(jnp.float32)
  return tuple(call(w_hh, h0, hs, gates, cs, c0, f32(d_hs), f32(d_h_last), f32(d_c_last),
                    reverse=reverse, bf16=bf16))


_fused.defvjp(_fused_fwd, _fused_bwd)


@jax.custom_jvp
def transpose_to_bf16(x: jax.Array) -> jax.Array:
  """x [..., R, C] float32 -> x^T [..., C, R] bfloat16 in a custom call that XLA cannot fold into
  the dot that reads it (see csrc/lstm_cpu.cc); only where BF16_MATMULS. Differentiable (its
  derivative is the plain transpose), so a gradient through it can be differentiated again."""
  call = jax.ffi.ffi_call(_TRANSPOSE_TO_BF16,
                          jax.ShapeDtypeStruct(x.shape[:-2] + x.shape[:-3:-1], jnp.bfloat16),
                          vmap_method="broadcast_all")
  return call(x.astype(jnp.float32))


@transpose_to_bf16.defjvp
def _transpose_to_bf16_jvp(primals, tangents):
  return transpose_to_bf16(*primals), jnp.swapaxes(tangents[0], -1, -2).astype(jnp.bfloat16)


def supports(w_hh: jax.Array) -> bool:
  """Whether the fused kernel can run this recurrence (else the scan kernel does).

  Only on a single CPU device: the custom call has no partitioning rule, so on a mesh of several
  devices (or processes) XLA would gather its operands and run it replicated on every device.
  """
  return (AVAILABLE and jax.default_backend() == "cpu" and jax.device_count() == 1 and
          w_hh.dtype in (jnp.float32, jnp.bfloat16) and w_hh.shape[0] % VECTOR_WIDTH == 0)


def fused(x_proj: jax.Array, w_hh: jax.Array, h0: jax.Array, c0: jax.Array, *, reverse: bool,
          num_steps: int, bias: jax.Array | None = None, bf16: bool | None = None
          ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """musae_jax.lstm's recurrence (a LstmKernel) on the fused kernel; only where supports(w_hh).
  bf16 (default: whether w_hh is bfloat16) runs bf16 matmuls, the kernel rounding w_hh."""
  constant = x_proj.shape[0] == 1 and num_steps != 1
  if bias is None:
    bias = jnp.zeros(x_proj.shape[-1:], jnp.float32)
  # The kernel reads float32 arrays; a bfloat16 w_hh converts exactly (and its gradient, float32
  # from the kernel, back to bfloat16 by the conversion's transpose, as for any bf16 operand; a
  # float32 w_hh with bf16=True keeps a float32 gradient).
  bf16 = w_hh.dtype == jnp.bfloat16 if bf16 is None else bf16
  return _fused(x_proj, bias.astype(jnp.float32), w_hh.astype(jnp.float32), h0, c0, reverse,
                bf16, num_steps, constant)
