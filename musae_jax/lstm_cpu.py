"""The fused CPU LSTM kernel (csrc/lstm_cpu.cc) behind musae_jax.lstm's recurrence interface.

Importing this module registers the kernel as lstm.IMPLEMENTATIONS["cpu_fused"] and puts it first
in lstm.AUTO_PREFERENCE, so impl="auto" uses it. The compiled library is optional (setup.py
builds it at install time when a C++ compiler is there); without it "auto" stays on the pure-JAX
scan and one notice is logged.

The kernel runs only the sequential part, like every kernel of the interface: the forward call
keeps the activated gates and cell states; the backward call walks time back, producing the
pre-activation gate gradients (the gradient of x_proj), and then the recurrent weight gradient as
one matmul over all T*B rows. Parameters are the same plain arrays whatever the kernel, so checkpoints do
not depend on it. It computes in float32; other matmul dtypes, hidden sizes the vector width
does not divide, non-CPU backends and runs over several devices use the scan kernel instead.
"""

import ctypes
import functools
import importlib.machinery
import pathlib

from absl import logging
import jax
import jax.numpy as jnp

from musae_jax import lstm

NAME = "cpu_fused"
_LIBRARY_STEM = "_lstm_cpu"
_FORWARD_TRAIN = "musae_lstm_forward_train"
_FORWARD_INFER = "musae_lstm_forward_infer"
_BACKWARD = "musae_lstm_backward"


def library_path() -> pathlib.Path | None:
  """Where the compiled kernel is, or None when it was not built."""
  package = pathlib.Path(__file__).resolve().parent
  for suffix in importlib.machinery.EXTENSION_SUFFIXES:
    path = package / f"{_LIBRARY_STEM}{suffix}"
    if path.exists():
      return path
  return None


def _load() -> int | None:
  """Loads the library and registers its FFI targets; returns its vector width (floats)."""
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
  for target, symbol in ((_FORWARD_TRAIN, "MusaeLstmForwardTrain"),
                         (_FORWARD_INFER, "MusaeLstmForwardInfer"),
                         (_BACKWARD, "MusaeLstmBackward")):
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                platform="cpu")
  return int(library.musae_lstm_cpu_vector_width())


VECTOR_WIDTH = _load()
AVAILABLE = VECTOR_WIDTH is not None


def _forward(x_proj, w_hh, h0, c0, reverse: bool, num_steps: int, keep_gates: bool):
  """The forward FFI call: hs, cs [T, B, H] (and the activated gates [T, B, 4H])."""
  batch, hidden = h0.shape
  state = jax.ShapeDtypeStruct((num_steps, batch, hidden), jnp.float32)
  results = [state, state]
  if keep_gates:
    results.append(jax.ShapeDtypeStruct((num_steps, batch, lstm.NUM_GATES * hidden), jnp.float32))
  target = _FORWARD_TRAIN if keep_gates else _FORWARD_INFER
  # Under jax.vmap every operand gets the mapped axis in front; the kernel treats leading axes
  # as independent recurrences.
  call = jax.ffi.ffi_call(target, results, vmap_method="broadcast_all")
  return call(x_proj, w_hh, h0, c0, reverse=reverse)


def _last(hs, cs, reverse: bool):
  # The state after the last processed step: step 0 when running in reverse.
  index = 0 if reverse else -1
  return hs[index], cs[index]


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _fused(x_proj, w_hh, h0, c0, reverse: bool, num_steps: int, constant: bool):
  del constant  # Only the backward pass needs it.
  hs, cs = _forward(x_proj, w_hh, h0, c0, reverse, num_steps, keep_gates=False)
  return hs, _last(hs, cs, reverse)


def _fused_fwd(x_proj, w_hh, h0, c0, reverse, num_steps, constant):
  del constant
  hs, cs, gates = _forward(x_proj, w_hh, h0, c0, reverse, num_steps, keep_gates=True)
  return (hs, _last(hs, cs, reverse)), (w_hh, h0, c0, hs, cs, gates)


def _fused_bwd(reverse, num_steps, constant, residuals, cotangents):
  w_hh, h0, c0, hs, cs, gates = residuals
  d_hs, (d_h_last, d_c_last) = cotangents
  batch, hidden = h0.shape
  # The kernel also returns the recurrent weight gradient (one matmul after its time loop) and,
  # for a constant input, d_x_proj already summed over time.
  d_x_steps = 1 if constant else num_steps
  call = jax.ffi.ffi_call(
      _BACKWARD,
      [jax.ShapeDtypeStruct((d_x_steps, batch, lstm.NUM_GATES * hidden), jnp.float32),
       jax.ShapeDtypeStruct(w_hh.shape, jnp.float32),
       jax.ShapeDtypeStruct(h0.shape, jnp.float32),
       jax.ShapeDtypeStruct(c0.shape, jnp.float32)],
      vmap_method="broadcast_all")
  f32 = lambda x: x.astype(jnp.float32)
  return tuple(call(w_hh, h0, hs, gates, cs, c0, f32(d_hs), f32(d_h_last), f32(d_c_last),
                    reverse=reverse))


_fused.defvjp(_fused_fwd, _fused_bwd)


def supports(w_hh: jax.Array) -> bool:
  """Whether the fused kernel can run this recurrence (else the scan kernel does).

  Only on a single CPU device: the custom call has no partitioning rule, so on a mesh of several
  devices (or processes) XLA would gather its operands and run it replicated on every device.
  """
  return (AVAILABLE and jax.default_backend() == "cpu" and jax.device_count() == 1 and
          w_hh.dtype == jnp.float32 and w_hh.shape[0] % VECTOR_WIDTH == 0)


def cpu_fused(x_proj: jax.Array, w_hh: jax.Array, h0: jax.Array, c0: jax.Array, *, reverse: bool,
              num_steps: int) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """lstm.LstmKernel on the fused CPU kernel; falls back to "scan" where it does not apply."""
  if not supports(w_hh):
    return lstm.IMPLEMENTATIONS["scan"](x_proj, w_hh, h0, c0, reverse=reverse,
                                        num_steps=num_steps)
  constant = x_proj.shape[0] == 1 and num_steps != 1
  return _fused(x_proj, w_hh, h0, c0, reverse, num_steps, constant)


# Registered even when not built (it then runs the scan kernel), so a config naming it still runs.
lstm.IMPLEMENTATIONS[NAME] = cpu_fused
if AVAILABLE and NAME not in lstm.AUTO_PREFERENCE:
  lstm.AUTO_PREFERENCE.insert(0, NAME)
