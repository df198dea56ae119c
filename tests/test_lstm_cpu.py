"""The fused CPU LSTM kernel: same values and gradients as the reference LSTM, same train step."""

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default as default_config
from musae_common import errors
from musae_jax import lstm
from musae_jax import lstm_cpu

pytestmark = pytest.mark.skipif(
    not lstm_cpu.AVAILABLE,
    reason="the fused CPU LSTM kernel is not built (pip install -e . with a C++17 compiler)")


def _inputs(steps, batch, hidden, constant, seed=0):
  keys = jax.random.split(jax.random.key(seed), 4)
  x_proj = jax.random.normal(keys[0], (1 if constant else steps, batch, 4 * hidden))
  w_hh = jax.random.normal(keys[1], (hidden, 4 * hidden)) / np.sqrt(hidden)
  h0 = 0.5 * jax.random.normal(keys[2], (batch, hidden))
  c0 = 0.5 * jax.random.normal(keys[3], (batch, hidden))
  return x_proj, w_hh, h0, c0


def _bias(hidden, seed=1):
  return 0.5 * jax.random.normal(jax.random.key(seed), (4 * hidden,))


def _value_and_grads(impl, reverse, steps, x_proj, w_hh, h0, c0, bias):
  # A different weight on every output, so that each cotangent path is exercised.
  weights = jax.random.normal(jax.random.key(9), (steps,) + h0.shape)

  def objective(x_proj, w_hh, h0, c0, bias):
    hs, (h_last, c_last) = lstm.lstm_recurrence(x_proj, w_hh, h0, c0, reverse=reverse,
                                                impl=impl, num_steps=steps, bias=bias)
    return jnp.sum(hs * weights) + jnp.sum(h_last ** 2) + jnp.sum(jnp.sin(c_last)), hs

  return jax.jit(jax.value_and_grad(objective, argnums=(0, 1, 2, 3, 4), has_aux=True))(
      x_proj, w_hh, h0, c0, bias)


# Batches that are not a multiple of the kernel's 6-row tiles, hidden sizes of one and of several
# vector widths (16 floats with AVX-512, 8 with AVX2), a single step, and steps x batch rows over
# two of the weight gradient's 128-row depth chunks (with a partial one); each direction and input
# kind with two shapes or more.
@pytest.mark.parametrize("steps,batch,hidden,reverse,constant", [
    (9, 13, 32, False, False), (9, 13, 32, True, True), (6, 3, 48, False, True),
    (6, 3, 48, True, False), (1, 7, 16, False, False), (1, 7, 16, True, True),
    (37, 9, 32, False, False), (37, 9, 32, True, True)])
def test_values_and_gradients_match_reference(steps, batch, hidden, reverse, constant):
  # The fused kernel adds the bias itself and returns its gradient; the reference gets
  # x_proj + bias.
  assert lstm.kernel_adds_bias("cpu_fused", _inputs(1, 1, hidden, False)[1])
  assert not lstm.kernel_adds_bias("reference", _inputs(1, 1, hidden, False)[1])
  args = _inputs(steps, batch, hidden, constant) + (_bias(hidden),)
  (value, hs), grads = _value_and_grads("cpu_fused", reverse, steps, *args)
  (ref_value, ref_hs), ref_grads = _value_and_grads("reference", reverse, steps, *args)
  np.testing.assert_allclose(hs, ref_hs, rtol=1e-5, atol=2e-6)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  for grad, ref_grad, arg in zip(grads, ref_grads, args):
    assert grad.shape == arg.shape
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=2e-5)
  assert np.abs(grads[1]).max() > 1e-2  # The recurrent weight gradient is not trivially zero.
  # The bias gradient is the input gradient summed over steps (a constant input's gradient is
  # already summed over them) and rows, and not trivially zero.
  np.testing.assert_allclose(grads[4], grads[0].sum((0, 1)), rtol=1e-4, atol=1e-4)
  assert np.abs(grads[4]).max() > 1e-2


def test_vmapped_recurrences_match_reference():
  """Under jax.vmap every operand gets a leading axis, which the kernel runs as independent
  recurrences (what a vmap over the four track decoders would produce)."""
  x_proj, w_hh, h0, c0 = _inputs(5, 8, 32, constant=False)
  xs, ws = jnp.stack([x_proj, 0.5 * x_proj, -x_proj]), jnp.stack([w_hh, -w_hh, 2 * w_hh])
  bs = jnp.stack([_bias(32, seed) for seed in range(3)])

  def loss(impl):
    run = lambda x, w, b: lstm.lstm_recurrence(x, w, h0, c0, impl=impl, bias=b)[0]
    return lambda xs, ws, bs: jnp.sum(jnp.tanh(jax.vmap(run)(xs, ws, bs)) *
                                      jnp.arange(8.0)[:, None])

  value, grads = jax.value_and_grad(loss("cpu_fused"), argnums=(0, 1, 2))(xs, ws, bs)
  ref_value, ref_grads = jax.value_and_grad(loss("reference"), argnums=(0, 1, 2))(xs, ws, bs)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  for grad, ref_grad in zip(grads, ref_grads):
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=2e-5)


def test_unsupported_shapes_and_dtypes_fall_back_to_scan():
  x_proj, w_hh, h0, c0 = _inputs(4, 3, 10, constant=False)  # 10 units: no whole vector.
  assert not lstm_cpu.supports(w_hh)
  assert not lstm_cpu.supports(w_hh.astype(jnp.bfloat16))
  hs, _ = lstm.lstm_recurrence(x_proj, w_hh, h0, c0, impl="cpu_fused")
  ref_hs, _ = lstm.lstm_recurrence(x_proj, w_hh, h0, c0, impl="reference")
  np.testing.assert_allclose(hs, ref_hs, rtol=1e-6, atol=1e-6)


def test_a_library_built_by_an_earlier_version_is_not_used(monkeypatch, caplog):
  # Its handlers take other attributes than this module passes: every call would fail.
  monkeypatch.setattr(lstm_cpu.ctypes.cdll, "LoadLibrary", lambda path: object())
  assert lstm_cpu._load() is None  # pylint: disable=protected-access
  assert "built by an earlier version of musae-jax" in caplog.text
  # Nor one from before the bf16 probe: it cannot tell whether bf16 pays.
  caplog.clear()
  before_probe = type("Library", (), {"musae_lstm_cpu_bf16_matmuls": lambda: 1})()
  monkeypatch.setattr(lstm_cpu.ctypes.cdll, "LoadLibrary", lambda path: before_probe)
  assert lstm_cpu._load() is None  # pylint: disable=protected-access
  assert "built by an earlier version of musae-jax" in caplog.text


def test_auto_prefers_the_fused_kernel():
  assert lstm.resolve_impl("auto") == "cpu_fused"


def _tiny_config(impl, dtype="float32"):
  config = default_config.get_config()
  config.model.dtype = dtype
  config.batch_size = 5
  config.data.bars = 2
  config.model.hidden_size = 32
  config.model.latent_size = 16
  config.model.critic_hidden_size = 32
  config.model.encoder_layers = 2
  config.model.decoder_layers = 2
  config.model.prior = "flower"
  config.model.lstm_impl = impl
  config.optim.beta_every_steps = 1  # The adversarial gradient reaches the encoder at step 1.
  return config


# In bfloat16 the two kernels round differently (the fused one keeps the recurrent weight
# gradient in float32 until the end), so two Adam steps may move a parameter by up to twice the
# learning rate in different directions where a gradient is near zero.
@pytest.mark.parametrize("dtype,rtol,atol", [("float32", 1e-4, 1e-5), ("bfloat16", 2e-2, 5e-4)])
def test_train_step_matches_scan_kernel(dtype, rtol, atol):
  from musae_jax import step as step_lib  # pylint: disable=g-import-not-at-top
  num_genres = 3
  rng = np.random.default_rng(0)
  batches = [{"tokens": rng.integers(0, 130, size=(5, 32, 4), dtype=np.uint8),
              "genres": np.eye(num_genres, dtype=np.float32)[rng.integers(0, 3, size=5)]}
             for _ in range(2)]
  results = {}
  for impl in ("cpu_fused", "scan"):
    config = _tiny_config(impl, dtype)
    graphdef, state = step_lib.create_train_state(config, num_genres)
    train_step = jax.jit(step_lib.make_train_step(config, graphdef, num_genres))
    for batch in batches:
      state, metrics = train_step(state, batch)
    results[impl] = (state.params, metrics)
  params, metrics = results["cpu_fused"]
  ref_params, ref_metrics = results["scan"]
  for name, value in ref_metrics.items():
    np.testing.assert_allclose(metrics[name], value, rtol=rtol, atol=atol, err_msg=name)
  for leaf, ref_leaf in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    assert leaf.dtype == jnp.float32
    np.testing.assert_allclose(leaf, ref_leaf, rtol=rtol, atol=atol)
  assert float(ref_metrics["grad_norm/autoencoder"]) > 0


def test_several_devices_use_the_scan_kernel(monkeypatch):
  # The custom call has no partitioning rule; on a mesh XLA would run it replicated.
  _, w_hh, _, _ = _inputs(2, 2, 32, constant=False)
  assert lstm_cpu.supports(w_hh)
  monkeypatch.setattr(jax, "device_count", lambda: 2)
  assert not lstm_cpu.supports(w_hh)


# ---------------------------------------------------------------------------------------------
# Instruction-set levels. The level is chosen when the library loads, so a forced one runs in a
# subprocess with MUSAE_LSTM_CPU_ISA set.

_REPO = pathlib.Path(__file__).resolve().parents[1]


# Values and gradients of the fused kernel against the reference in a fresh process: batches that
# are not a multiple of the 6-row tiles (nor of AMX's 16-row ones), hidden sizes of several
# vectors (of 4, 8 or 16 floats; 48 is not a whole number of AMX's 32-deep forward tiles), each
# direction, a constant input, a bias, and the level that actually ran.
_CHECK_LEVEL = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from musae_jax import lstm, lstm_cpu
    assert lstm_cpu.ISA == sys.argv[1], (lstm_cpu.ISA, sys.argv[1])
    for steps, batch, hidden, reverse, constant in ((5, 13, 48, False, False),
                                                   (4, 7, 32, True, True),
                                                   (37, 9, 32, True, False),
                                                   (6, 35, 64, False, False)):
      keys = jax.random.split(jax.random.key(steps), 6)
      x = jax.random.normal(keys[0], (1 if constant else steps, batch, 4 * hidden))
      b = 0.5 * jax.random.normal(keys[5], (4 * hidden,))
      w = jax.random.normal(keys[1], (hidden, 4 * hidden)) / np.sqrt(hidden)
      h0, c0 = (0.5 * jax.random.normal(k, (batch, hidden)) for k in keys[2:4])
      weights = jax.random.normal(keys[4], (steps, batch, hidden))
      def objective(impl, w=w):
        def f(x, w, h0, c0, b):
          hs, (h, c) = lstm.lstm_recurrence(x, w, h0, c0, reverse=reverse, impl=impl,
                                            num_steps=steps, bias=b)
          return jnp.sum(hs * weights) + jnp.sum(h ** 2) + jnp.sum(jnp.sin(c))
        return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3, 4)))(x, w, h0, c0, b)
      assert lstm_cpu.supports(w)
      value, grads = objective("cpu_fused")
      ref_value, ref_grads = objective("reference")
      np.testing.assert_allclose(value, ref_value, rtol=1e-5)
      for grad, ref_grad in zip(grads, ref_grads):
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=2e-5)
      # A bfloat16 w_hh: bf16 matmuls at a level that has them, within bf16 rounding of the
      # float32 reference (value and every gradient); elsewhere the float32 code on the rounded
      # weights, bit for bit.
      w16 = w.astype(jnp.bfloat16)
      value16, grads16 = objective("cpu_fused", w16)
      assert grads16[1].dtype == jnp.bfloat16
      np.testing.assert_allclose(value16, ref_value, rtol=2e-3)
      for grad, ref_grad in zip(grads16, ref_grads):
        scale = float(jnp.abs(ref_grad).max())
        np.testing.assert_allclose(np.float32(grad), ref_grad, atol=1.5e-2 * scale)
      exact = objective("cpu_fused", w16.astype(jnp.float32))
      same = [np.array_equal(np.float32(a), np.float32(b))
              for a, b in zip((value16,) + grads16[:1] + grads16[2:], (exact[0],) + exact[1][:1] +
                              exact[1][2:])]
      assert all(same) != lstm_cpu.BF16_MATMULS, (same, lstm_cpu.BF16_MATMULS)
    print("ok", lstm_cpu.ISA, lstm_cpu.VECTOR_WIDTH, lstm_cpu.BF16_MATMULS)
    """)


def _run_forced(isa, script, *args):
  env = {**os.environ, lstm_cpu.ISA_ENV: isa, "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, "-c", script, *args], cwd=_REPO, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


_BF16_LEVELS = ("amx_bf16", "avx512_bf16")  # The levels with bf16 matmuls.


@pytest.mark.parametrize("isa", ["amx_bf16", "avx512_bf16", "avx512", "avx2", "avx", "generic"])
def test_every_level_this_cpu_runs_matches_reference(isa):
  if isa not in lstm_cpu.COMPILED_ISAS:
    pytest.skip(f"this build has no {isa} level (levels: {lstm_cpu.COMPILED_ISAS})")
  if isa not in lstm_cpu.RUNNABLE_ISAS:
    pytest.skip(f"this CPU cannot run the {isa} level")
  result = _run_forced(isa, _CHECK_LEVEL, isa)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split()[:2] == ["ok", isa]
  assert result.stdout.split()[3] == str(isa in _BF16_LEVELS)


def test_the_lowest_level_runs_on_a_default_build():
  """The build made with setup.py's default flags (no -march) has the generic level; forced
  down to it, the kernel imports, runs and matches the reference (as on a CPU without AVX2)."""
  assert lstm_cpu.COMPILED_ISAS[-1] == "generic"
  assert "generic" in lstm_cpu.RUNNABLE_ISAS
  result = _run_forced("generic", _CHECK_LEVEL, "generic")
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split() == ["ok", "generic", "4", "False"]


def _cpu_flags() -> set[str]:
  try:
    text = pathlib.Path("/proc/cpuinfo").read_text()
  except OSError:
    return set()
  return set(next((line.split(":", 1)[1].split() for line in text.splitlines()
                   if line.startswith("flags")), []))


def test_dispatcher_picks_the_widest_level_the_cpu_runs():
  assert lstm_cpu.ISA in lstm_cpu.RUNNABLE_ISAS
  if os.environ.get(lstm_cpu.ISA_ENV, "auto") == "auto":
    assert lstm_cpu.ISA == lstm_cpu.RUNNABLE_ISAS[0]
  flags = _cpu_flags()
  if "x86_64" in os.uname().machine and flags:  # Cross-check cpuid with the kernel's view.
    avx512 = {"avx512f", "avx2", "fma"}
    avx512_bf16 = avx512 | {"avx512bw", "avx512_bf16"}
    # (Linux lists amx_tile only where it can grant the tile state, as the kernel then asks.)
    # (A compiler without AMX intrinsics, before GCC 11 or clang 12, builds no amx_bf16 level.)
    levels = ("amx_bf16", "avx512_bf16", "avx512", "avx2", "avx", "generic")
    assert lstm_cpu.COMPILED_ISAS in (levels, levels[1:])
    amx = "amx_bf16" in lstm_cpu.COMPILED_ISAS and {"amx_tile", "amx_bf16"} <= flags
    expected = ("amx_bf16" if amx and avx512_bf16 <= flags else
                "avx512_bf16" if avx512_bf16 <= flags else
                "avx512" if avx512 <= flags else "avx2" if {"avx2", "fma"} <= flags else
                "avx" if "avx" in flags else "generic")
    assert lstm_cpu.RUNNABLE_ISAS[0] == expected
  widths = {"amx_bf16": 16, "avx512_bf16": 16, "avx512": 16, "avx2": 8, "avx": 8, "generic": 4}
  assert lstm_cpu.VECTOR_WIDTH == widths[lstm_cpu.ISA]


def test_forcing_an_unknown_level_is_refused_with_a_clear_error():
  result = _run_forced("avx1024", "from musae_jax import lstm_cpu")
  assert result.returncode != 0
  assert "MUSAE_LSTM_CPU_ISA=avx1024 is not a level of this build" in result.stderr
  assert "of which this CPU runs" in result.stderr


class _FakeLibrary:
  """The library's level functions for a CPU that has AVX2 but not AVX-512."""

  def __init__(self):
    self.level = b"avx2"
    for name in ("musae_lstm_cpu_isa", "musae_lstm_cpu_compiled_isas", "musae_lstm_cpu_set_isa",
                 "musae_lstm_cpu_isa_runs"):
      setattr(self, name, getattr(self, "_" + name.removeprefix("musae_lstm_cpu_")))

  def _isa(self):
    return self.level

  def _compiled_isas(self):
    return b"avx512,avx2,avx,generic"

  def _isa_runs(self, name):
    return {b"avx512": 0, b"avx2": 1, b"avx": 1, b"generic": 1}.get(name, -1)

  def _set_isa(self, name):
    status = self._isa_runs(name)
    if status == 1:
      self.level = name
    return status


def test_forcing_a_level_the_cpu_cannot_run_is_refused(monkeypatch):
  library = _FakeLibrary()
  monkeypatch.setenv(lstm_cpu.ISA_ENV, "avx512")
  with pytest.raises(errors.UserError, match="MUSAE_LSTM_CPU_ISA=avx512 needs instructions this "
                     "CPU does not have.*this CPU runs avx2, avx, generic"):
    lstm_cpu._select_isa(library)  # pylint: disable=protected-access
  assert library.level == b"avx2"  # Unchanged.
  monkeypatch.setenv(lstm_cpu.ISA_ENV, "generic")
  assert lstm_cpu._select_isa(library) == "generic"  # pylint: disable=protected-access
  monkeypatch.setenv(lstm_cpu.ISA_ENV, "auto")
  assert lstm_cpu._select_isa(_FakeLibrary()) == "avx2"  # pylint: disable=protected-access


@pytest.mark.skipif(not lstm_cpu.BF16_MATMULS, reason="the kernel's level has no bf16 matmuls")
# A ragged matrix, and the rows of the 2-bar model's sequences (XLA's CPU backend ran a bf16 dot
# with a transposed operand as a float32 one only from some size on).
@pytest.mark.parametrize("shape", [(37, 21), (32, 64, 256)])
def test_transpose_to_bf16_rounds_like_xla_and_keeps_bf16_dots_bf16(shape):
  x = jax.random.normal(jax.random.key(0), shape) * 3.0
  expected = jnp.swapaxes(x, -1, -2).astype(jnp.bfloat16)
  assert np.array_equal(np.asarray(lstm_cpu.transpose_to_bf16(x)), np.asarray(expected))
  # The bf16 weight gradient of a sequence's projection then compiles to a bf16 dot.
  x3 = x.reshape((-1,) + shape[-2:])
  w = jax.random.normal(jax.random.key(1), (shape[-1], 32))
  grad = jax.jit(jax.grad(lambda w: jnp.sum(lstm.input_matmul(x3, w, jnp.bfloat16) ** 2)))
  operand_types = _dot_operand_types(grad.lower(w).compile().as_text())
  assert operand_types and all(t.startswith("bf16[") for t in operand_types), operand_types
  # And that gradient can be differentiated again (the custom call has a derivative).
  grad_of_grad = jax.grad(lambda x: jnp.sum(jax.grad(
      lambda w: jnp.sum(jnp.tanh(lstm.input_matmul(x, w, jnp.bfloat16))))(w) ** 2))(x3)
  assert grad_of_grad.shape == x3.shape and np.isfinite(grad_of_grad).all()
  assert np.abs(grad_of_grad).max() > 0


def _dot_operand_types(hlo: str) -> list[str]:
  """The types of every dot's operands in optimized HLO text (dots sit in fused computations,
  their operands being the computation's parameters or instructions before them)."""
  types, found = {}, []
  for line in hlo.splitlines():
    line = line.strip()
    definition = re.match(r"(%[\w.-]+) = (\w+\[[\d,]*\])", line)
    if definition:
      types[definition.group(1)] = definition.group(2)
    dot = re.search(r" dot\((%[\w.-]+), (%[\w.-]+)\)", line)
    if dot:
      found += [types[dot.group(1)], types[dot.group(2)]]
  return found


@pytest.mark.skipif(not lstm_cpu.BF16_MATMULS, reason="the kernel's level has no bf16 matmuls")
def test_a_bf16_layer_gets_its_recurrent_weight_gradient_in_float32():
  from flax import nnx  # pylint: disable=g-import-not-at-top
  x = jax.random.normal(jax.random.key(0), (7, 5, 8))
  h0 = c0 = jnp.zeros((5, 32))

  def grads(dtype):
    layer = lstm.LSTM(8, 32, impl="cpu_fused", dtype=dtype, rngs=nnx.Rngs(0))
    loss = lambda layer: jnp.sum(layer(layer.project(x), h0, c0)[0] ** 2)
    return nnx.grad(loss)(layer)["w_hh"][...]

  g16, g32 = grads(jnp.bfloat16), grads(jnp.float32)
  assert g16.dtype == jnp.float32
  # Not rounded to bf16 on its way to the optimizer, and within bf16's error of float32's.
  assert not np.array_equal(g16, g16.astype(jnp.bfloat16).astype(jnp.float32))
  np.testing.assert_allclose(g16, g32, atol=2e-2 * float(jnp.abs(g32).max()))


@pytest.mark.skipif("avx512_bf16" not in lstm_cpu.RUNNABLE_ISAS,
                    reason="this CPU has no AVX512-BF16")
def test_bf16_pays_by_the_measured_bf16_dot_rate():
  # VDPBF16PS over float32 FMA multiply-adds a second: ~2 on AMD Zen 4, ~0.5 on an Intel Xeon
  # without AMX. A probe the compiler folded or dropped would give 0, a huge or no number.
  speedup = lstm_cpu.BF16_DOT_SPEEDUP
  assert speedup is not None and 0.2 < speedup < 8.0, speedup
  assert lstm_cpu.BF16_PAYS == (lstm_cpu.BF16_MATMULS and (
      lstm_cpu.ISA == "amx_bf16" or speedup >= lstm_cpu.MIN_BF16_DOT_SPEEDUP))
  # At a level without bf16 matmuls bf16 never pays, whatever the instruction's rate.
  result = _run_forced("avx512", "from musae_jax import lstm_cpu as k; "
                       "print(k.BF16_MATMULS, k.BF16_PAYS, k.BF16_DOT_SPEEDUP > 0.2)")
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ["False", "False", "True"], result.stdout
