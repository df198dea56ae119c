"""The LSTM: one recurrence interface, interchangeable kernels, and the layer holding its weights.

Gate order is (i, f, g, o):  c' = f * c + i * g,  h' = o * tanh(c'),  i, f, o sigmoid, g tanh.

The caller computes the input projection x @ w_ih outside the recurrence (one big matmul over
all steps, or once per sequence when the input is constant, as in MusAE's decoders), so a kernel
only runs the part that is truly sequential: gates_t = x_proj_t + b + h_{t-1} @ w_hh. The bias b
is added to the projection by the caller, or by the kernel where that saves work (the fused CPU
kernel: see lstm_recurrence).

Kernels are registered by name in IMPLEMENTATIONS and all take the same arguments, so a faster
one (e.g. a fused native kernel) can be added without touching the model:
  "scan"       lax.scan forward with a hand-written reverse-scan backward (jax.custom_vjp): the
               backward loop produces only the gate gradients and dh @ w_hh^T, and the recurrent
               weight gradient is ONE matmul over all T*B rows after the loop. On CPU this is
               10-26% faster than differentiating through the scan.
  "reference"  the same forward under plain autodiff; the yardstick the tests compare against.
One more name runs whole layers from their input instead (WHOLE_LAYER_IMPLEMENTATIONS): "cudnn",
cuDNN's fused LSTM (musae_jax/lstm_cudnn.py), which computes the input projection itself; the
model calls it layer by layer (LSTM.runs_whole_layers).

Parameters (LSTM below) are plain arrays w_ih [I, 4H], w_hh [H, 4H], b [4H], so checkpoints do
not depend on the kernel. The dtype of w_hh passed to a kernel is the matmul input dtype (pass
bfloat16 for bf16 matmuls); states, gates and accumulation stay float32.
"""

import functools
from typing import Callable, Protocol

from flax import nnx
import jax
import jax.numpy as jnp

from musae_common.errors import UserError

NUM_GATES = 4  # i, f, g, o.


class LstmKernel(Protocol):

  def __call__(self, x_proj: jax.Array, w_hh: jax.Array, h0: jax.Array, c0: jax.Array, *,
               reverse: bool, num_steps: int) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    ...


def _recurrent_matmul(h: jax.Array, w_hh: jax.Array) -> jax.Array:
  # Inputs in w_hh's dtype, accumulation and result in float32.
  return jnp.dot(h.astype(w_hh.dtype), w_hh, preferred_element_type=jnp.float32)


def _cell(x_t: jax.Array, h: jax.Array, c: jax.Array, w_hh: jax.Array):
  """One step. Returns (h', c', activated gates [B, 4H])."""
  pre = x_t + _recurrent_matmul(h, w_hh)
  i, f, g, o = jnp.split(pre, NUM_GATES, axis=-1)
  i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
  c_new = f * c + i * g
  h_new = o * jnp.tanh(c_new)
  return h_new, c_new, (i, f, g, o)


def _run_forward(x_proj, w_hh, h0, c0, reverse: bool, num_steps: int, keep_residuals: bool):
  """Scans the cell over time. A [1, B, 4H] x_proj is a constant input, read in every step."""
  constant = x_proj.shape[0] == 1 and num_steps != 1

  def step(carry, x_t):
    h, c = carry
    if constant:
      x_t = x_proj[0]
    h_new, c_new, gates = _cell(x_t, h, c, w_hh)
    # The backward pass needs c_{t-1} (to get c_t back cheaply) and the activated gates.
    ys = (h_new, c, jnp.concatenate(gates, axis=-1)) if keep_residuals else h_new
    return (h_new, c_new), ys

  xs = None if constant else x_proj
  (h_last, c_last), ys = jax.lax.scan(step, (h0, c0), xs, length=num_steps, reverse=reverse)
  return (h_last, c_last), ys


def _reference(x_proj, w_hh, h0, c0, *, reverse: bool, num_steps: int):
  (h_last, c_last), hs = _run_forward(x_proj, w_hh, h0, c0, reverse, num_steps, False)
  return hs, (h_last, c_last)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _fast_scan(x_proj, w_hh, h0, c0, reverse: bool, num_steps: int):
  return _reference(x_proj, w_hh, h0, c0, reverse=reverse, num_steps=num_steps)


def _fast_scan_fwd(x_proj, w_hh, h0, c0, reverse, num_steps):
  (h_last, c_last), (hs, c_prev, gates) = _run_forward(
      x_proj, w_hh, h0, c0, reverse, num_steps, True)
  residuals = (x_proj, w_hh, h0, c0, hs, c_prev, gates)
  return (hs, (h_last, c_last)), residuals


def _fast_scan_bwd(reverse, num_steps, residuals, cotangents):
  x_proj, w_hh, h0, c0, hs, c_prev, gates = residuals
  d_hs, (d_h_last, d_c_last) = cotangents

  def step(carry, xs):
    dh_later, dc_later = carry  # Gradients reaching h_t, c_t from the steps processed after t.
    dh_out, gates_t, c_before = xs
    i, f, g, o = jnp.split(gates_t, NUM_GATES, axis=-1)
    c_t = f * c_before + i * g
    tanh_c = jnp.tanh(c_t)
    dh = dh_out + dh_later
    dc = dc_later + dh * o * (1.0 - tanh_c * tanh_c)
    d_pre = jnp.concatenate([
        dc * g * i * (1.0 - i),
        dc * c_before * f * (1.0 - f),
        dc * i * (1.0 - g * g),
        dh * tanh_c * o * (1.0 - o),
    ], axis=-1)
    dh_before = jnp.dot(d_pre.astype(w_hh.dtype), w_hh.T, preferred_element_type=jnp.float32)
    return (dh_before, dc * f), d_pre

  # The backward pass walks time in the opposite order of the forward pass.
  (d_h0, d_c0), d_pre = jax.lax.scan(
      step, (d_h_last.astype(jnp.float32), d_c_last.astype(jnp.float32)),
      (d_hs.astype(jnp.float32), gates, c_prev), reverse=not reverse)

  # h_{t-1} of every step (h_{t+1} when running in reverse), then the recurrent weight gradient
  # as one matmul over all T*B rows instead of T small ones inside the loop.
  if reverse:
    h_prev = jnp.concatenate([hs[1:], h0[None].astype(hs.dtype)], axis=0)
  else:
    h_prev = jnp.concatenate([h0[None].astype(hs.dtype), hs[:-1]], axis=0)
  d_w_hh = jnp.einsum("tbh,tbg->hg", h_prev.astype(w_hh.dtype), d_pre.astype(w_hh.dtype),
                      preferred_element_type=jnp.float32)
  if x_proj.shape[0] == 1 and num_steps != 1:
    d_x_proj = jnp.sum(d_pre, axis=0, keepdims=True)
  else:
    d_x_proj = d_pre
  return (d_x_proj.astype(x_proj.dtype), d_w_hh.astype(w_hh.dtype), d_h0.astype(h0.dtype),
          d_c0.astype(c0.dtype))


_fast_scan.defvjp(_fast_scan_fwd, _fast_scan_bwd)


def _scan(x_proj, w_hh, h0, c0, *, reverse: bool, num_steps: int):
  return _fast_scan(x_proj, w_hh, h0, c0, reverse, num_steps)


def _lstm_cpu():
  """musae_jax.lstm_cpu, imported on first use: loading the library (and its one notice when it
  is not built) waits until an LSTM runs."""
  from musae_jax import lstm_cpu  # pylint: disable=g-import-not-at-top
  return lstm_cpu


def _cpu_fused(x_proj, w_hh, h0, c0, *, reverse: bool, num_steps: int, bias=None,
               matmul_dtype=None):
  """The fused CPU kernel (musae_jax/lstm_cpu.py) where it applies, else the scan kernel; named
  in a config, it runs even where the library is not built. Adds the bias where given. With
  matmul_dtype (see lstm_recurrence) w_hh is the float32 master and its gradient stays float32."""
  matmul_dtype = w_hh.dtype if matmul_dtype is None else matmul_dtype
  if not _lstm_cpu().supports(jax.ShapeDtypeStruct(w_hh.shape, matmul_dtype)):
    if bias is not None:
      x_proj = x_proj + bias
    return _scan(x_proj, w_hh.astype(matmul_dtype), h0, c0, reverse=reverse,
                 num_steps=num_steps)
  return _lstm_cpu().fused(x_proj, w_hh, h0, c0, reverse=reverse, num_steps=num_steps,
                           bias=bias, bf16=matmul_dtype == jnp.bfloat16)


def kernel_adds_bias(impl: str, w_hh: jax.Array | jax.ShapeDtypeStruct) -> bool:
  """Whether impl's kernel, for this w_hh (its shape and dtype), adds the bias inside the
  recurrence itself (it then takes it as the keyword argument bias; see lstm_recurrence). The
  registered kernels other than "cpu_fused" do not, and are called without it."""
  return resolve_impl(impl) == "cpu_fused" and _lstm_cpu().supports(w_hh)


def runs_bf16_matmuls(impl: str, hidden_size: int) -> bool:
  """Whether a bfloat16 LSTM of hidden_size units on kernel impl runs bf16 matmuls here: on the
  fused CPU kernel (which supports the shape and this device count) at a level with bf16 dot
  instructions (AVX512-BF16, or AMX-BF16 tiles). Elsewhere the fused kernel computes bfloat16
  weights in float32 and the bfloat16 step gains nothing measurable (0.98x and 1.09x float32's
  on a Zen 4 with XLA, oneDNN and the kernel capped at AVX2, 2 bars, H 256; BENCHMARKS.md), and
  the scan kernel's bf16 matmuls are slower than the fused kernel's float32 ones."""
  w_hh = jax.ShapeDtypeStruct((hidden_size, NUM_GATES * hidden_size), jnp.bfloat16)
  return (resolve_impl(impl) == "cpu_fused" and _lstm_cpu().supports(w_hh) and
          _lstm_cpu().BF16_MATMULS)


def bf16_pays(impl: str, hidden_size: int) -> bool:
  """Whether such an LSTM runs bf16 matmuls here (runs_bf16_matmuls) that are also faster than its
  float32 ones: AMX tiles, or bf16 dot instructions that out-run float32 FMAs (lstm_cpu.BF16_PAYS;
  on an Intel Xeon without AMX they run at half the rate)."""
  return runs_bf16_matmuls(impl, hidden_size) and _lstm_cpu().BF16_PAYS


def _cpu_fused_built() -> bool:
  return _lstm_cpu().AVAILABLE


# Name -> kernel: the one registry. Tests and experiments may add more
# (e.g. IMPLEMENTATIONS["onednn"] = fn).
IMPLEMENTATIONS: dict[str, LstmKernel] = {"scan": _scan, "reference": _reference,
                                          "cpu_fused": _cpu_fused}
# impl="auto" picks the first of these that is registered and available (AVAILABLE; a name
# without an entry there is always available).
AUTO_PREFERENCE: list[str] = ["cpu_fused", "scan"]
AVAILABLE: dict[str, Callable[[], bool]] = {"cpu_fused": _cpu_fused_built}
# Kernels that run a whole layer from its input (musae_jax/lstm_cudnn.py), not lstm_recurrence's
# recurrence from x_proj; never picked by "auto" (cuDNN is the GPU reference, not the fast path).
WHOLE_LAYER_IMPLEMENTATIONS: tuple[str, ...] = ("cudnn",)


def resolve_impl(impl: str) -> str:
  """The registered kernel name that impl ("auto" or a name) stands for."""
  if impl == "auto":
    impl = next(name for name in AUTO_PREFERENCE
                if name in IMPLEMENTATIONS and AVAILABLE.get(name, lambda: True)())
  if impl not in IMPLEMENTATIONS and impl not in WHOLE_LAYER_IMPLEMENTATIONS:
    raise UserError(f"Unknown LSTM implementation {impl!r}; known: "
                    f"{sorted(IMPLEMENTATIONS) + list(WHOLE_LAYER_IMPLEMENTATIONS)} or 'auto'.")
  return impl


def batches_well() -> bool:
  """Whether independent recurrences of one shape (MusAE's four track decoders, a biLSTM layer's
  two directions) should run as one call vmapped over a leading axis rather than one after
  another.

  On an accelerator, yes: one loop with 4x wider matmuls has a quarter of the sequential steps,
  each a kernel launch (expected, not measured: no GPU was available). On CPU, no: measured in
  MusAE's step, the scan kernel was 15-20% slower batched (XLA overlaps independent loops on its
  threads) and the fused kernel gained nothing at H 256 and lost 10% at the demo's H 128.
  """
  return jax.default_backend() != "cpu"


def lstm_recurrence(x_proj: jax.Array, w_hh: jax.Array, h0: jax.Array, c0: jax.Array, *,
                    reverse: bool = False, impl: str = "scan", num_steps: int | None = None,
                    bias: jax.Array | None = None, matmul_dtype: jnp.dtype | None = None
                    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """Runs an LSTM over time, given the input projection.

  Args:
    x_proj: [T, B, 4H] input projection, or [1, B, 4H] for an input that is the same at every
      step (give num_steps then); it is broadcast over time without being materialised.
    w_hh: [H, 4H] recurrent weights; their dtype is the matmul input dtype.
    h0, c0: [B, H] initial state.
    reverse: process time from the last step to the first (outputs stay in time order).
    impl: a name in IMPLEMENTATIONS, or "auto".
    num_steps: sequence length; needed only when x_proj is a constant [1, B, 4H] input.
    bias: [4H] added to x_proj at every step, or None when x_proj has it already. The fused CPU
      kernel adds it as it reads x_proj and sums its gradient from the rows its backward pass
      writes anyway; added to x_proj beforehand, it costs XLA a pass of its own over x_proj and
      a reduction of d_x_proj over T x B. Measured on a 2-core Intel Xeon: the 16-bar step 2-6%
      faster, the 2-bar step within the noise; 9-10% faster at 2 bars where XLA runs without
      YNNPACK (it then lowers that reduction to slow reduce-window loops). For the other
      kernels it is added to x_proj first.
    matmul_dtype: the recurrent matmuls' input dtype when it is not w_hh's (w_hh then being the
      float32 parameter): the fused CPU kernel rounds w_hh itself and returns its gradient in
      float32, where a bf16 w_hh's gradient would reach the optimizer rounded to bf16; the
      other kernels get w_hh.astype(matmul_dtype).

  Returns:
    (hs [T, B, H] float32, (h_T, c_T)), where h_T, c_T is the state after the last processed
    step (step 0 when reverse).
  """
  if num_steps is None:
    num_steps = x_proj.shape[0]
  elif x_proj.shape[0] not in (1, num_steps):
    raise ValueError(f"x_proj has {x_proj.shape[0]} steps but num_steps={num_steps}.")
  if resolve_impl(impl) in WHOLE_LAYER_IMPLEMENTATIONS:
    raise ValueError(f"LSTM kernel {impl!r} runs whole layers from their input "
                     "(lstm_cudnn.run_layer), not a recurrence from x_proj.")
  kernel = IMPLEMENTATIONS[resolve_impl(impl)]
  kwargs = {}
  if matmul_dtype is not None:
    if resolve_impl(impl) == "cpu_fused":
      kwargs["matmul_dtype"] = matmul_dtype
    else:
      w_hh = w_hh.astype(matmul_dtype)
  x_proj = x_proj.astype(jnp.float32)
  if bias is not None:
    if kernel_adds_bias(impl, jax.ShapeDtypeStruct(w_hh.shape, matmul_dtype or w_hh.dtype)):
      kwargs["bias"] = bias.astype(jnp.float32)
    else:
      x_proj = x_proj + bias.astype(jnp.float32)
  return kernel(x_proj, w_hh, h0.astype(jnp.float32), c0.astype(jnp.float32), reverse=reverse,
                num_steps=num_steps, **kwargs)


def input_matmul(x: jax.Array, w: jax.Array, dtype: jnp.dtype | None = None) -> jax.Array:
  """x [..., I] @ w [I, N] with inputs in dtype (default: x's) and float32 accumulation: an
  LSTM's input projection (and a lower-precision dense layer's matmul, see model.py).

  x and w are cast to dtype inside, and their gradients come back in x's and w's own dtypes
  (float32 for float32 activations and parameters), so that a bf16 matmul's backward holds no
  bf16-output dot: XLA's CPU backend folds a dot's float32 result and its conversion to bf16
  into one bf16-output dot, which it then computes entirely in float32 (on a Zen 4 at H 256, a
  quarter of the bf16 2-bar step). Likewise the output gradient is rounded to dtype before the
  backward matmuls, as autocast does: mixed bf16 x float32 operands also run as float32 dots.

  On CPU the weight gradient of a sequence is computed from an explicitly transposed copy of x.
  Autodiff gives XLA the contraction x^T @ d over the leading (time x batch) axis of both
  operands, which XLA's CPU backend lowers to an Eigen matmul that repacks a transposed copy of d
  at every call; with x^T materialised first (a quarter of d's size at MusAE's shapes) it is a
  plain matmul for YNNPACK. Measured: 10-15% of the whole 2-bar training step on a 2-core CPU.
  """
  dtype = x.dtype if dtype is None else dtype
  # A sequence (many rows), or a lower-precision dense layer: its contraction over the batch
  # axis would otherwise run as a float32 dot (see _transposed_copy).
  transposed_copy = jax.default_backend() == "cpu" and (x.ndim > 2 or dtype != jnp.float32)
  if dtype == jnp.float32 and not transposed_copy:
    return jnp.dot(x, w, preferred_element_type=jnp.float32)
  return _matmul(x, w, jnp.dtype(dtype), transposed_copy)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _matmul(x, w, dtype, transposed_copy: bool):
  del transposed_copy  # Only the backward pass differs.
  return jnp.dot(x.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32)


def _matmul_fwd(x, w, dtype, transposed_copy):
  return _matmul(x, w, dtype, transposed_copy), (x, w)


def _matmul_bwd(dtype, transposed_copy, residuals, d_out):
  x, w = residuals
  d_out, x_in, w_in = d_out.astype(dtype), x.astype(dtype), w.astype(dtype)
  d_rows = d_out.reshape(-1, d_out.shape[-1])
  if transposed_copy:
    d_w = jax.lax.dot_general(_transposed_copy(x.reshape(-1, x.shape[-1]), dtype), d_rows,
                              (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  else:
    d_w = jax.lax.dot_general(x_in.reshape(-1, x.shape[-1]), d_rows, (((0,), (0,)), ((), ())),
                              preferred_element_type=jnp.float32)
  d_x = jax.lax.dot_general(d_out, w_in, (((d_out.ndim - 1,), (1,)), ((), ())),
                            preferred_element_type=jnp.float32)
  return d_x.astype(x.dtype), d_w.astype(w.dtype)


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def _transposed_copy(rows: jax.Array, dtype: jnp.dtype) -> jax.Array:
  """rows.T in dtype, materialised for a matmul (input_matmul's weight gradient)."""
  if (dtype == jnp.bfloat16 and jax.default_backend() == "cpu" and jax.device_count() == 1 and
      _lstm_cpu().BF16_MATMULS):
    # XLA folds a transpose it can see into the dot, barrier or not, and runs a bf16 dot with a
    # transposed operand as a float32 one: on a Zen 4, 2 bars, H 256, the bf16 step was 8-10%
    # slower so. The fused kernel's library transposes in a call XLA cannot look into.
    return _lstm_cpu().transpose_to_bf16(rows)
  # For float32 the barrier keeps XLA from folding the transpose back into the matmul.
  return jax.lax.optimization_barrier(rows.astype(dtype).T)


@jax.custom_vjp
def _sum_of_rows(table: jax.Array, indices: jax.Array) -> jax.Array:
  """table [V, G], indices int [..., k] -> [..., G]: the sum of the k indexed rows of table.

  Forward: one gather per hot index, added as it goes (XLA fuses the adds into the gathers; one
  gather of all k rows materialises [..., k, G] first). Backward: one scatter-add of the output
  gradient to all k rows, instead of the k scatters autodiff would make of the k gathers (XLA
  lowered some of those to loops). Measured on the 2-bar step against the single gather-then-sum:
  2-3% faster at H 256, no slower at the demo's size, where the k-gathers form under autodiff was
  up to 25% slower in some runs. The indices come from tokens checked at load time.
  """
  out = table.at[indices[..., 0]].get(mode="promise_in_bounds")
  for k in range(1, indices.shape[-1]):
    out = out + table.at[indices[..., k]].get(mode="promise_in_bounds")
  return out


def _sum_of_rows_fwd(table, indices):
  return _sum_of_rows(table, indices), (indices, table.shape)


def _sum_of_rows_bwd(residuals, d_out):
  indices, shape = residuals
  updates = jnp.broadcast_to(d_out[..., None, :], indices.shape + shape[-1:])
  d_table = jnp.zeros(shape, d_out.dtype).at[indices].add(updates, mode="promise_in_bounds")
  return d_table, None


_sum_of_rows.defvjp(_sum_of_rows_fwd, _sum_of_rows_bwd)


class LSTM(nnx.Module):
  """The weights of one unidirectional LSTM layer and the two halves of running it.

  Initialised like Keras' LSTM (what MusAE used): Glorot-uniform w_ih, orthogonal w_hh, zero
  bias except 1 on the forget gate.
  """

  def __init__(self, input_size: int, hidden_size: int, *, impl: str = "auto",
               dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
    self.hidden_size = hidden_size
    self.impl = impl
    self.dtype = dtype
    gates = NUM_GATES * hidden_size
    self.w_ih = nnx.Param(nnx.initializers.glorot_uniform()(rngs.params(), (input_size, gates)))
    self.w_hh = nnx.Param(nnx.initializers.orthogonal()(rngs.params(), (hidden_size, gates)))
    forget_gate = (jnp.arange(gates) // hidden_size) == 1
    self.b = nnx.Param(forget_gate.astype(jnp.float32))

  @property
  def runs_whole_layers(self) -> bool:
    """Whether this layer's kernel runs from the layer's input (lstm_cudnn.run_layer with
    self.weights()) instead of project() and __call__."""
    return resolve_impl(self.impl) in WHOLE_LAYER_IMPLEMENTATIONS

  def weights(self) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(w_ih, w_hh, b): the layer's weights for a whole-layer kernel."""
    return self.w_ih[...], self.w_hh[...], self.b[...]

  def _kernel_adds_bias(self) -> bool:
    # Decided once per layer for project() and __call__ alike. Where the kernel does not add the
    # bias, project() adds it first, as before there was a choice (the same bits).
    return kernel_adds_bias(self.impl, jax.ShapeDtypeStruct(self.w_hh.shape, self.dtype))

  def project(self, *inputs: jax.Array, fixed_rows: int = 0) -> jax.Array:
    """The input projection for __call__ for inputs [..., I_k] that together make up the I input
    features (all but the last fixed_rows, which the caller projects itself): x @ w_ih, plus b
    unless the layer's kernel adds it itself.

    Several inputs (e.g. the forward and backward halves of a biLSTM layer below) are
    multiplied by their own rows of w_ih, so they need not be concatenated first.
    """
    out, start = (None if self._kernel_adds_bias() else self.b[...]), 0
    for x in inputs:
      rows = self.w_ih[start:start + x.shape[-1]]
      term = input_matmul(x, rows, self.dtype)
      out = term if out is None else out + term
      start += x.shape[-1]
    if start + fixed_rows != self.w_ih.shape[0]:
      raise ValueError(f"LSTM inputs have {start} features (+{fixed_rows} projected elsewhere), "
                       f"w_ih expects {self.w_ih.shape[0]}.")
    return out

  def project_one_hot(self, indices: jax.Array) -> jax.Array:
    """project() for a k-hot x given by its hot indices [..., k]: a gather-sum of k rows of w_ih
    (plus b unless the layer's kernel adds it)."""
    rows = _sum_of_rows(self.w_ih[...], indices)
    return rows if self._kernel_adds_bias() else rows + self.b[...]

  def __call__(self, x_proj: jax.Array, h0: jax.Array, c0: jax.Array, *, reverse: bool = False,
               num_steps: int | None = None) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """lstm_recurrence with this layer's recurrent weights (and bias, where its kernel adds it);
    x_proj is time-major, from project() or project_one_hot()."""
    return lstm_recurrence(x_proj, self.w_hh[...], h0, c0, reverse=reverse, impl=self.impl,
                           num_steps=num_steps, matmul_dtype=self.dtype,
                           bias=self.b[...] if self._kernel_adds_bias() else None)
