"""cuDNN's fused LSTM (jax.experimental.rnn) for whole layers: config.model.lstm_impl="cudnn".

On a GPU this is the float32 (TF32 under JAX's default matmul precision) reference that the
GPU check races our own kernels against, and a fallback; it is not the fast path: through JAX,
cuDNN takes float32 data only, has no vmap rule (the four track decoders run one by one) and
uses its standard algorithm.

cuDNN computes a layer's input projection itself, so it does not fit lstm_recurrence's kernels,
which receive x @ w_ih: the model calls run_layer with the layer's input instead (the Encoder's
and TrackDecoder's whole-layer branch). Parameters stay ours, one LSTM module per layer and
direction (w_ih [I, 4H], w_hh [H, 4H], b [4H]: checkpoints do not depend on the kernel); they
are packed into cuDNN's flat vector at each call, a transposed copy that is small next to the
layer. Both use the gate order (i, f, g, o); our one bias goes to cuDNN's b_ih, its b_hh is 0.

Where there is no GPU, the same packed vector runs through jax.experimental.rnn.lstm_ref, the
pure-JAX statement of cuDNN's semantics that ships with JAX: that is how the packing, the gate
order and the directions are tested on CPU (tests/test_lstm_cudnn.py). It is slow; train with
the default kernel on CPUs.
"""

from typing import Sequence

import jax
from jax.experimental import rnn
import jax.numpy as jnp

# One direction's parameters, as an LSTM module holds them: (w_ih [I, 4H], w_hh [H, 4H], b [4H]).
Direction = tuple[jax.Array, jax.Array, jax.Array]


def pack(directions: Sequence[Direction]) -> jax.Array:
  """cuDNN's flat weight vector of ONE layer (one direction, or forward then backward):
  W_ih [4H, I] and W_hh [4H, H] of each direction, then b_ih and b_hh of each direction
  (jax.experimental.rnn's layout; unpack_lstm_weights reads it back)."""
  matrices = [m for w_ih, w_hh, _ in directions for m in (w_ih.T, w_hh.T)]
  biases = [v for _, _, b in directions for v in (b, jnp.zeros_like(b))]
  return jnp.concatenate([a.astype(jnp.float32).reshape(-1) for a in matrices + biases])


def runs_cudnn() -> bool:
  """Whether run_layer calls cuDNN here (a CUDA GPU) rather than its pure-JAX reference."""
  return jax.default_backend() == "gpu" and rnn.gpu_rnn is not None


def run_layer(x: jax.Array, directions: Sequence[Direction], h0: jax.Array, c0: jax.Array
              ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One LSTM layer, unidirectional (one direction given) or bidirectional (forward, backward).

  Args:
    x: [T, B, I] time-major input (float32).
    directions: the layer's parameters, one Direction per direction.
    h0, c0: [D, B, H] initial states, one per direction.

  Returns:
    (hs [T, B, D * H] with the forward direction's units first, h_n [D, B, H], c_n [D, B, H]);
    the backward direction's final state is its state after step 0.
  """
  num_steps, batch, input_size = x.shape
  hidden_size = directions[0][1].shape[0]
  bidirectional = len(directions) == 2
  weights = pack(directions)
  x = x.astype(jnp.float32).transpose(1, 0, 2)  # cuDNN through JAX is batch-major.
  h0, c0 = h0.astype(jnp.float32), c0.astype(jnp.float32)
  seq_lengths = jnp.full((batch,), num_steps, jnp.int32)
  if runs_cudnn():
    y, h_n, c_n = rnn.lstm(x, h0, c0, weights, seq_lengths, input_size=input_size,
                           hidden_size=hidden_size, num_layers=1, dropout=0.0,
                           bidirectional=bidirectional)
  else:
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(weights, input_size, hidden_size, 1,
                                                     bidirectional)
    y, h_n, c_n = rnn.lstm_ref(x, h0, c0, w_ih, w_hh, b_ih, b_hh, seq_lengths, input_size,
                               hidden_size, 1, 0.0, bidirectional)
  return y.transpose(1, 0, 2), h_n, c_n
