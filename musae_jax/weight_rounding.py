"""How float32 master weights become bf16 matmul inputs in a bf16 training step.

Rounding each weight to the nearest bf16 (what a cast does) errs the same way for every batch
until the weight crosses a rounding boundary, so the gradient is taken at the rounded weights
w + e, not w, and the error H e is shared by all batches: a bias the optimizer follows step after
step (RESULTS.md, "Trained in bfloat16": on a trained corpus_2bar run, 1.5% of the mean
gradient, most of bf16's 1.6% bias; the rounding of activations mostly averages out). Stochastic
rounding draws each weight's bf16 neighbour with probability by distance, so the rounded weight
equals w in expectation and a fresh draw every step turns the bias into noise that averages
out over steps, far below SGD's own.

Only matrices are rounded (ndim >= 2): they are the matmul operands; biases are added in float32.
The gradient passes straight through to the float32 weights.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

ROUNDING_CHOICES = ("nearest", "stochastic")  # config.model.weight_rounding's choices.

_LOW_BITS = 0xFFFF  # The float32 bits below bf16's mantissa.


def _hash_bits(shape: tuple[int, ...], seed: jax.Array) -> jax.Array:
  """uint32 [shape]: murmur3's finalizer of (element index, seed), a few integer ops that XLA
  fuses into the rounding loop: for corpus_2bar's 6.6 million weights a few ms on one core,
  against 70 ms for jax.random.bits (threefry)."""
  h = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
  h = h * jnp.uint32(0x9E3779B1) + seed
  h = (h ^ (h >> 16)) * jnp.uint32(0x85EBCA6B)
  h = (h ^ (h >> 13)) * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def stochastic_round(x: jax.Array, seed: jax.Array) -> jax.Array:
  """float32 x with every entry rounded to one of its two bf16 neighbours (so bf16-exact): over
  uniformly random uint32 seeds, to the one away from zero with probability equal to x's
  distance from the other over their spacing. Non-finite entries stay as they are."""
  bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
  noise = _hash_bits(x.shape, seed) & jnp.uint32(_LOW_BITS)
  rounded = jax.lax.bitcast_convert_type((bits + noise) & jnp.uint32(~_LOW_BITS & 0xFFFFFFFF),
                                         jnp.float32)
  return jnp.where(jnp.isfinite(x), rounded, x)


@jax.custom_vjp
def _rounded_straight_through(x: jax.Array, seed: jax.Array) -> jax.Array:
  """stochastic_round(x, seed), whose gradient passes to x unchanged."""
  return stochastic_round(x, seed)


def _rounded_fwd(x, seed):
  return stochastic_round(x, seed), seed


def _rounded_bwd(seed, d_out):
  return d_out, np.zeros(seed.shape, jax.dtypes.float0)


_rounded_straight_through.defvjp(_rounded_fwd, _rounded_bwd)


def _is_weight_matrix(x: jax.Array) -> bool:
  return x.dtype == jnp.float32 and x.ndim >= 2


def round_weights(params, key: jax.Array):
  """params with each float32 matrix stochastically rounded to bf16-exact values, a fresh draw
  per key; the gradient with respect to the result flows to params unchanged."""
  leaves, treedef = jax.tree.flatten(params)
  seeds = jax.random.bits(key, (len(leaves),), jnp.uint32)
  rounded = [_rounded_straight_through(x, seeds[i]) if _is_weight_matrix(x) else x
             for i, x in enumerate(leaves)]
  return jax.tree.unflatten(treedef, rounded)


def round_weights_to_nearest(params):
  """params with each float32 matrix rounded to its nearest bf16 values (kept in float32): what a
  bf16 matmul's cast gives, the same for every batch. For measurements, not training."""
  return jax.tree.map(lambda x: x.astype(jnp.bfloat16).astype(x.dtype)
                      if _is_weight_matrix(x) else x, params)
