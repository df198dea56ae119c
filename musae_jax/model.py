"""MusAE's networks: the biLSTM encoder, one LSTM decoder per track, and the latent critic.

Shapes are batch-major at this API ([B, T, 4] tokens, [B, T, 4, 130] logits); inside, the LSTMs
run time-major. Every matmul takes its inputs in the configured compute dtype and accumulates in
float32; parameters are float32.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from data_pipeline.tokens import NUM_CLASSES, NUM_TRACKS, STEPS_PER_BAR, TRACKS
from musae_jax import lstm
from musae_jax import lstm_cudnn
from musae_jax import priors
from musae_jax.lstm import LSTM

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
DTYPE_CHOICES = (*COMPUTE_DTYPES, "auto")  # config.model.dtype's choices.
MATMUL_PRECISIONS = ("default", "highest")  # config.model.matmul_precision's choices.
# config.model.decoder's choices: the paper's decoders reading z at every step, or MusicVAE's
# conductor emitting one embedding per bar and decoders that decode each bar from z and it.
DECODERS = ("flat", "hierarchical")
ENCODERS = ("flat", "hierarchical")
# config.model.encoder_bar_reader's choices (hierarchical encoder): a biLSTM over the bars'
# summaries, or z's heads reading them all, concatenated.
BAR_READERS = ("lstm", "concat")
# config.model.conductor's choices (hierarchical decoder): MusicVAE's LSTM, or one linear map of z
# to every bar's embedding.
CONDUCTORS = ("lstm", "linear")


def apply_matmul_precision(model_config: ml_collections.ConfigDict) -> None:
  """Sets JAX's default precision of float32 matmuls for this process from the config: "default"
  lets GPUs use TF32 (CPUs compute float32 either way), "highest" asks for full float32. Runs
  saved before the field existed get "default"."""
  precision = model_config.get("matmul_precision", "default")
  # "default" leaves JAX's setting unset: the same programs as before the field existed.
  jax.config.update("jax_default_matmul_precision", None if precision == "default" else precision)


def compute_dtype(model_config: ml_collections.ConfigDict) -> jnp.dtype:
  """config.model.dtype's matmul dtype. "auto" is bfloat16 where the model's LSTMs run bf16
  matmuls faster than float32 ones (the fused kernel on a CPU with AMX-BF16 tiles, or with
  AVX512-BF16 that out-runs its float32 FMAs, as on AMD Zen 4: lstm.bf16_pays) and float32
  elsewhere, accelerators included (their bf16 path is not measured yet)."""
  name = model_config.dtype
  if name == "auto":
    name = ("bfloat16" if lstm.bf16_pays(model_config.lstm_impl, model_config.hidden_size)
            else "float32")
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"config.model.dtype={name!r}; expected one of {DTYPE_CHOICES}.")
  return COMPUTE_DTYPES[name]


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
  """Inverted dropout of x's entries at rate (training, where a key is given); x itself with no
  key or a rate of 0, so that evaluation and runs without dropout compute what they always did."""
  if key is None or not rate:
    return x
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def _keep_dtypes(args, dtype=None):
  del dtype  # lstm.input_matmul casts the matmul's inputs itself.
  return args


def _input_matmul_dot_general(dtype):
  """A dot_general for nnx.Linear's x [..., I] @ kernel [I, N] through lstm.input_matmul: inputs
  in dtype, float32 accumulation, gradients in the operands' own dtypes (see input_matmul for
  why a bf16 layer needs that on CPU)."""

  def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None,
                  out_sharding=None):
    del precision, preferred_element_type  # Default precision; float32 results.
    if dimension_numbers != (((lhs.ndim - 1,), (0,)), ((), ())) or out_sharding is not None:
      raise NotImplementedError(f"{dimension_numbers}, out_sharding={out_sharding}")
    return lstm.input_matmul(lhs, rhs, dtype)

  return dot_general


def _linear(in_features: int, out_features: int, dtype, rngs: nnx.Rngs) -> nnx.Linear:
  if dtype == jnp.float32:  # Autodiff's own dot, as always.
    return nnx.Linear(in_features, out_features, dtype=dtype, param_dtype=jnp.float32,
                      preferred_element_type=jnp.float32, rngs=rngs)
  # Lower precision: the layer's input, kernel and bias stay float32 arrays; the matmul casts.
  return nnx.Linear(in_features, out_features, dtype=dtype, param_dtype=jnp.float32,
                    promote_dtype=_keep_dtypes, dot_general=_input_matmul_dot_general(dtype),
                    rngs=rngs)


class Encoder(nnx.Module):
  """Stacked biLSTM over the one-hot tokens; the top layer's final forward and backward states
  give mu and log sigma^2 of q(z | x) (paper eqs. 7-10).

  Hierarchical (config.model.encoder="hierarchical", an extension beyond the paper): the stack
  reads each bar on its own, all bars of a window as one batch, and one more biLSTM layer reads
  the bars' summaries (final states); its final states give mu and log sigma^2. Every bar then
  reaches z through 16 + bars recurrent steps instead of up to a whole window's, which the flat
  encoder's two final states mostly forget at 16 bars (RESULTS.md, the position analysis). That
  layer's width (summary_size, default hidden_size) bounds the code: z is a linear map of its
  2 x summary_size final states, whatever N_z is. With bar_reader="concat" there is no layer over
  the bars: z's heads read all the bars' summaries side by side (num_bars x 2 x hidden_size).
  """

  def __init__(self, hidden_size: int, latent_size: int, num_layers: int, *, lstm_impl: str,
               dtype, rngs: nnx.Rngs, initial_posterior_std: float = 1.0,
               residual: bool = False, dropout_rate: float = 0.0, hierarchical: bool = False,
               summary_size: int = 0, bar_reader: str = "lstm", num_bars: int | None = None):
    self.residual = residual
    self.dropout_rate = dropout_rate
    self.hierarchical = hierarchical
    self.concatenates_bars = hierarchical and bar_reader == "concat"
    if self.concatenates_bars and not num_bars:
      raise ValueError("The concatenating bar reader needs the window's number of bars.")
    self.num_bars = num_bars
    one_hot_size = NUM_TRACKS * NUM_CLASSES
    sizes = [one_hot_size] + [2 * hidden_size] * (num_layers - 1)
    kwargs = dict(impl=lstm_impl, dtype=dtype, rngs=rngs)
    self.forward_layers = nnx.List([LSTM(size, hidden_size, **kwargs) for size in sizes])
    self.backward_layers = nnx.List([LSTM(size, hidden_size, **kwargs) for size in sizes])
    # Flat: the stack's top layer gives z; hierarchical: one more biLSTM layer over the bars, or
    # (concat) z's heads read every bar's summary: each bar reaches z through one matmul.
    summary_size = (summary_size or hidden_size) if hierarchical else hidden_size
    heads_input = 2 * summary_size
    if self.concatenates_bars:
      heads_input = num_bars * 2 * hidden_size
    elif hierarchical:
      self.bar_forward = LSTM(2 * hidden_size, summary_size, **kwargs)
      self.bar_backward = LSTM(2 * hidden_size, summary_size, **kwargs)
    self.mu = _linear(heads_input, latent_size, dtype, rngs)
    self.logvar = _linear(heads_input, latent_size, dtype, rngs)
    # At initialisation the windows' means differ by ~0.02 (less with deeper stacks): with the
    # posterior's sigma at 1 (logvar bias 0) the sampled code is almost pure noise, the decoders
    # learn to ignore it and training sits on the majority-token plateau. The logvar bias sets
    # the initial sigma instead.
    self.logvar.bias[...] = jnp.full((latent_size,), 2.0 * math.log(initial_posterior_std),
                                     jnp.float32)

  def __call__(self, tokens: jax.Array,
               dropout_key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """tokens int [B, T, 4] -> (mu, logvar), each float32 [B, N_z]. With dropout_key (training)
    the input of every layer above the first is dropped out at self.dropout_rate."""
    if not self.hierarchical:
      summary = self._summarize(tokens, dropout_key)
      return self.mu(summary), self.logvar(summary)
    batch, num_steps = tokens.shape[:2]
    if num_steps % STEPS_PER_BAR:
      raise ValueError(f"The hierarchical encoder reads whole bars; {num_steps} steps are not a "
                       f"multiple of {STEPS_PER_BAR}.")
    num_bars = num_steps // STEPS_PER_BAR
    if self.concatenates_bars and num_bars != self.num_bars:
      raise ValueError(f"This encoder reads windows of {self.num_bars} bars, not {num_bars}.")
    bars = tokens.reshape(batch * num_bars, STEPS_PER_BAR, NUM_TRACKS)  # Row b * bars + bar.
    summaries = self._summarize(bars, dropout_key)  # [B * bars, 2H]
    if self.concatenates_bars:
      summary = dropout(summaries.reshape(batch, -1), self.dropout_rate,
                        _layer_key(dropout_key, len(self.forward_layers)))  # [B, bars * 2H]
      return self.mu(summary), self.logvar(summary)
    x = summaries.reshape(batch, num_bars, -1).transpose(1, 0, 2)  # [bars, B, 2H]
    x = dropout(x, self.dropout_rate, _layer_key(dropout_key, len(self.forward_layers)))
    summary = _bidirectional_final_states(self.bar_forward, self.bar_backward, x)
    return self.mu(summary), self.logvar(summary)

  def _summarize(self, tokens: jax.Array, dropout_key: jax.Array | None) -> jax.Array:
    """tokens int [B, T, 4] -> the top layer's final forward and backward states [B, 2H]."""
    if self.forward_layers[0].runs_whole_layers:
      return self._summarize_whole_layers(tokens, dropout_key)
    batch = tokens.shape[0]
    # The one-hot input [T, B, 4*130] has 4 hot entries per step: token + 130*track. Its
    # projection is the sum of those 4 rows of w_ih, with no one-hot array or matmul.
    hot = tokens.astype(jnp.int32).transpose(1, 0, 2) + NUM_CLASSES * jnp.arange(NUM_TRACKS)
    hidden_size = self.forward_layers[0].hidden_size
    zeros = jnp.zeros((batch, hidden_size), jnp.float32)
    inputs = None
    for index, (forward, backward) in enumerate(zip(self.forward_layers, self.backward_layers)):
      if inputs is None:
        x_forward, x_backward = forward.project_one_hot(hot), backward.project_one_hot(hot)
      else:
        dropped = [dropout(x, self.dropout_rate, _layer_key(dropout_key, index, direction))
                   for direction, x in enumerate(inputs)]
        x_forward, x_backward = forward.project(*dropped), backward.project(*dropped)
      if lstm.batches_well():
        hs_forward, h_forward, hs_backward, h_backward = _both_directions_in_one_loop(
            forward, backward, x_forward, x_backward, zeros)
      else:
        hs_forward, (h_forward, _) = forward(x_forward, zeros, zeros)
        hs_backward, (h_backward, _) = backward(x_backward, zeros, zeros, reverse=True)
      if self.residual and inputs is not None:
        hs_forward, hs_backward = hs_forward + inputs[0], hs_backward + inputs[1]
        h_forward, h_backward = hs_forward[-1], hs_backward[0]
      inputs = (hs_forward, hs_backward)
    return jnp.concatenate([h_forward, h_backward], axis=-1)

  def _summarize_whole_layers(self, tokens: jax.Array,
                              dropout_key: jax.Array | None) -> jax.Array:
    """_summarize for a kernel that runs whole layers from their input (lstm_cudnn): one
    bidirectional call per layer, the one-hot input materialised."""
    one_hot = jax.nn.one_hot(tokens.transpose(1, 0, 2), NUM_CLASSES, dtype=jnp.float32)
    x = one_hot.reshape(*one_hot.shape[:2], NUM_TRACKS * NUM_CLASSES)  # [T, B, 4*130].
    hidden_size = self.forward_layers[0].hidden_size
    zeros = jnp.zeros((2, tokens.shape[0], hidden_size), jnp.float32)
    below = None
    for index, (forward, backward) in enumerate(zip(self.forward_layers, self.backward_layers)):
      if below is not None:
        x = dropout(x, self.dropout_rate, _layer_key(dropout_key, index))
      hs, _, _ = lstm_cudnn.run_layer(x, [forward.weights(), backward.weights()], zeros, zeros)
      if self.residual and below is not None:
        hs = hs + below
      x = below = hs
    return _final_states(hs, hidden_size)


def _final_states(hs: jax.Array, hidden_size: int) -> jax.Array:
  """A whole-layer kernel's biLSTM outputs [T, B, 2H] -> [B, 2H]: the forward direction's state
  after step T and the backward direction's after step 1."""
  return jnp.concatenate([hs[-1, :, :hidden_size], hs[0, :, hidden_size:]], axis=-1)


def _bidirectional_final_states(forward: LSTM, backward: LSTM, x: jax.Array) -> jax.Array:
  """x [T, B, I] -> [B, 2H]: the final states of one biLSTM layer that starts from zeros."""
  hidden_size = forward.hidden_size
  if forward.runs_whole_layers:
    zeros = jnp.zeros((2, x.shape[1], hidden_size), jnp.float32)
    hs, _, _ = lstm_cudnn.run_layer(x, [forward.weights(), backward.weights()], zeros, zeros)
    return _final_states(hs, hidden_size)
  zeros = jnp.zeros((x.shape[1], hidden_size), jnp.float32)
  _, (h_forward, _) = forward(forward.project(x), zeros, zeros)
  _, (h_backward, _) = backward(backward.project(x), zeros, zeros, reverse=True)
  return jnp.concatenate([h_forward, h_backward], axis=-1)


def _layer_key(key: jax.Array | None, layer: int, part: int = 0) -> jax.Array | None:
  """The dropout key of a stack's layer (and part of it: an encoder direction), or None."""
  return None if key is None else jax.random.fold_in(jax.random.fold_in(key, layer), part)


def _vmap_over_modules(modules, call, *mapped):
  """call(module, *args) for modules of one structure as ONE call vmapped over them: their
  parameters stacked on a leading axis (they stay one set per module in checkpoints), the
  arrays in `mapped` split along their leading axis, one slice per module."""
  stacked = jax.tree.map(lambda *params: jnp.stack(params), *[nnx.state(m) for m in modules])
  graphdef = nnx.graphdef(modules[0])
  return jax.vmap(lambda params, *args: call(nnx.merge(graphdef, params), *args))(stacked,
                                                                                  *mapped)


def _both_directions_in_one_loop(forward: LSTM, backward: LSTM, x_forward: jax.Array,
                                 x_backward: jax.Array, zeros: jax.Array):
  """A biLSTM layer's two recurrences as one loop of twice the width (accelerators: half the
  sequential steps, each a kernel launch): the backward direction runs forward over its input
  reversed in time, vmapped beside the forward one. Returns (hs_forward, h_forward,
  hs_backward, h_backward) as the two separate calls would."""
  hs, (h, _) = _vmap_over_modules([forward, backward], lambda layer, x: layer(x, zeros, zeros),
                                  jnp.stack([x_forward, x_backward[::-1]]))
  return hs[0], h[0], hs[1][::-1], h[1]


def _step_positions(num_steps: int) -> jax.Array:
  """int [T]: each step's position in its bar (0 on every downbeat)."""
  return jnp.arange(num_steps) % STEPS_PER_BAR


def _stack_over_constant_input(layers, inputs: tuple[jax.Array, ...], state: jax.Array,
                               num_steps: int, residual: bool, dropout_rate: float = 0.0,
                               dropout_key: jax.Array | None = None,
                               step_position: bool = False) -> jax.Array:
  """hs [T, B, H] of stacked LSTM layers whose first layer reads the same inputs ([B, I_k],
  together its I features) at every step and whose every layer starts from (state, state). With
  step_position the first layer also reads the one-hot of the step's position in its bar (the
  last STEPS_PER_BAR rows of its w_ih). With dropout_key the input of every layer above the
  first is dropped out at dropout_rate (the residual path carries the layer below undropped)."""
  if layers[0].runs_whole_layers:  # lstm_cudnn: the input materialised at every step.
    x = jnp.concatenate([x.astype(jnp.float32) for x in inputs], axis=-1)
    x = jnp.broadcast_to(x, (num_steps, *x.shape))
    if step_position:
      one_hot = jax.nn.one_hot(_step_positions(num_steps), STEPS_PER_BAR, dtype=jnp.float32)
      x = jnp.concatenate([x, jnp.broadcast_to(one_hot[:, None], (*x.shape[:2], STEPS_PER_BAR))],
                          axis=-1)
    for index, layer in enumerate(layers):
      layer_input = dropout(x, dropout_rate, _layer_key(dropout_key, index)) if index else x
      hs, _, _ = lstm_cudnn.run_layer(layer_input, [layer.weights()], state[None], state[None])
      x = hs + x if residual and index else hs
    return x
  # The first layer's input is the same at every step: project it once, broadcast inside the
  # LSTM. A one-hot position's projection is a row of w_ih: one [T, 4H] gather, added per step.
  if step_position:
    w_ih = layers[0].w_ih[...]
    positions = w_ih[w_ih.shape[0] - STEPS_PER_BAR:][_step_positions(num_steps)]
    x_proj = layers[0].project(*inputs, fixed_rows=STEPS_PER_BAR)[None] + positions[:, None]
  else:
    x_proj = layers[0].project(*inputs)[None]
  hs = None
  for index, layer in enumerate(layers):
    below = hs
    if below is not None:
      x_proj = layer.project(dropout(below, dropout_rate, _layer_key(dropout_key, index)))
    hs, _ = layer(x_proj, state, state, num_steps=num_steps)
    if residual and below is not None:
      hs = hs + below
  return hs


class Conductor(nnx.Module):
  """MusicVAE's conductor (Roberts et al. 2018), for config.model.decoder="hierarchical":
  stacked LSTMs that read z at every bar and emit one embedding per bar (the top layer's output),
  starting from tanh(W z + b) as the track decoders do."""

  def __init__(self, latent_size: int, hidden_size: int, num_layers: int, *, lstm_impl: str,
               dtype, rngs: nnx.Rngs, residual: bool = False, dropout_rate: float = 0.0):
    self.residual = residual
    self.dropout_rate = dropout_rate
    self.initial_state = _linear(latent_size, hidden_size, dtype, rngs)
    sizes = [latent_size] + [hidden_size] * (num_layers - 1)
    self.layers = nnx.List([LSTM(size, hidden_size, impl=lstm_impl, dtype=dtype, rngs=rngs)
                            for size in sizes])

  def __call__(self, z: jax.Array, num_bars: int,
               dropout_key: jax.Array | None = None) -> jax.Array:
    """z [B, N_z] -> bar embeddings [bars, B, H_c]."""
    state = jnp.tanh(self.initial_state(z))
    return _stack_over_constant_input(self.layers, (z,), state, num_bars, self.residual,
                                      self.dropout_rate, dropout_key)


class LinearConductor(nnx.Module):
  """config.model.conductor="linear": every bar's embedding is tanh(W_bar z + b_bar), one matmul
  of z for all bars, so no bar's content has to pass through a recurrence's state."""

  def __init__(self, latent_size: int, hidden_size: int, num_bars: int, *, dtype,
               rngs: nnx.Rngs):
    self.num_bars = num_bars
    self.embeddings = _linear(latent_size, num_bars * hidden_size, dtype, rngs)

  def __call__(self, z: jax.Array, num_bars: int,
               dropout_key: jax.Array | None = None) -> jax.Array:
    """z [B, N_z] -> bar embeddings [bars, B, H_c]."""
    del dropout_key  # No stacked layers to drop out between.
    if num_bars != self.num_bars:
      raise ValueError(f"This conductor emits {self.num_bars} bars, not {num_bars}.")
    embeddings = jnp.tanh(self.embeddings(z))  # [B, bars * H_c]
    return embeddings.reshape(z.shape[0], num_bars, -1).transpose(1, 0, 2)


class TrackDecoder(nnx.Module):
  """Stacked LSTMs that read z at every step (not autoregressive), then a softmax over the 130
  classes. Every layer starts from the same state tanh(W z + b), as in MusAE's code (eq. 11).

  With bar_embedding_size (the hierarchical decoder) it decodes each bar on its own, all bars of
  a window as one batch: the layers read [z, the bar's embedding] at each of the bar's steps and
  start from tanh(W embedding + b), so the recurrence is one bar deep instead of a window deep.

  With step_position (config.model.step_position) the first layer also reads the one-hot of the
  step's position in its bar, so where a hit falls in the bar need not be counted out by the
  recurrence from z alone.
  """

  def __init__(self, latent_size: int, hidden_size: int, num_layers: int, *, lstm_impl: str,
               dtype, rngs: nnx.Rngs, residual: bool = False, bar_embedding_size: int = 0,
               dropout_rate: float = 0.0, step_position: bool = False):
    self.residual = residual
    self.dropout_rate = dropout_rate
    self.step_position = step_position
    self.hierarchical = bar_embedding_size > 0
    self.initial_state = _linear(bar_embedding_size or latent_size, hidden_size, dtype, rngs)
    sizes = ([latent_size + bar_embedding_size + (STEPS_PER_BAR if step_position else 0)] +
             [hidden_size] * (num_layers - 1))
    self.layers = nnx.List([LSTM(size, hidden_size, impl=lstm_impl, dtype=dtype, rngs=rngs)
                            for size in sizes])
    self.output = _linear(hidden_size, NUM_CLASSES, dtype, rngs)

  def __call__(self, z: jax.Array, num_steps: int, bar_embeddings: jax.Array | None = None,
               dropout_key: jax.Array | None = None) -> jax.Array:
    """z [B, N_z] (and, hierarchical, bar embeddings [bars, B, H_c]) -> logits [T, B, 130]
    (time-major)."""
    stack_args = (self.residual, self.dropout_rate, dropout_key, self.step_position)
    if not self.hierarchical:
      state = jnp.tanh(self.initial_state(z))
      return self.output(_stack_over_constant_input(self.layers, (z,), state, num_steps,
                                                    *stack_args))
    num_bars, batch = bar_embeddings.shape[:2]
    if num_steps != num_bars * STEPS_PER_BAR:
      raise ValueError(f"{num_steps} steps are not {num_bars} bars of {STEPS_PER_BAR}.")
    embeddings = bar_embeddings.reshape(num_bars * batch, -1)  # Row bar * B + b.
    z_rows = jnp.tile(z, (num_bars, 1))
    state = jnp.tanh(self.initial_state(embeddings))
    hs = _stack_over_constant_input(self.layers, (z_rows, embeddings), state, STEPS_PER_BAR,
                                    *stack_args)
    logits = self.output(hs)  # [16, bars * B, 130]
    logits = logits.reshape(STEPS_PER_BAR, num_bars, batch, NUM_CLASSES).transpose(1, 0, 2, 3)
    return logits.reshape(num_steps, batch, NUM_CLASSES)


class Critic(nnx.Module):
  """WGAN critic on latent codes: 2 tanh hidden layers and a linear score. With the flower prior
  it also reads the one-hot mixture component (label-conditioned AAE, Makhzani et al.)."""

  def __init__(self, latent_size: int, hidden_size: int, num_components: int, *, dtype,
               rngs: nnx.Rngs):
    self.num_components = num_components
    self.hidden1 = _linear(latent_size + num_components, hidden_size, dtype, rngs)
    self.hidden2 = _linear(hidden_size, hidden_size, dtype, rngs)
    self.score = _linear(hidden_size, 1, dtype, rngs)

  def __call__(self, z: jax.Array, components_one_hot: jax.Array | None = None) -> jax.Array:
    """z [B, N_z] (+ one-hot [B, K] when conditioned) -> scores [B]."""
    if self.num_components:
      if components_one_hot is None:
        raise ValueError("This critic is conditioned on the prior component; pass its one-hot.")
      z = jnp.concatenate([z, components_one_hot.astype(z.dtype)], axis=-1)
    x = jnp.tanh(self.hidden1(z))
    x = jnp.tanh(self.hidden2(x))
    return self.score(x)[:, 0]


class MusAE(nnx.Module):
  """Encoder + 4 track decoders (the autoencoder) and the latent critic."""

  def __init__(self, model_config: ml_collections.ConfigDict, num_genres: int, *,
               rngs: nnx.Rngs, num_bars: int | None = None):
    """num_bars (config.data.bars) sizes the parts that read or emit every bar at once: the
    concatenating bar reader and the linear conductor; the other parts take any whole window."""
    dtype = compute_dtype(model_config)
    hidden = model_config.hidden_size
    latent = model_config.latent_size
    impl = model_config.lstm_impl
    self.prior = model_config.prior
    # Flower: one component per genre plus one for unlabeled windows; gaussian: unconditioned.
    self.num_components = priors.component_count(self.prior, num_genres)
    residual = model_config.get("residual", False)
    dropout_rate = model_config.get("dropout", 0.0)  # Runs saved before the field had none.
    self.encoder = Encoder(hidden, latent, model_config.encoder_layers, lstm_impl=impl,
                           dtype=dtype, rngs=rngs,
                           initial_posterior_std=model_config.get("initial_posterior_std", 1.0),
                           residual=residual, dropout_rate=dropout_rate,
                           hierarchical=model_config.get("encoder", "flat") == "hierarchical",
                           summary_size=model_config.get("encoder_summary_size", 0),
                           bar_reader=model_config.get("encoder_bar_reader", "lstm"),
                           num_bars=num_bars)
    # Runs saved before the field existed are flat; a flat model has no conductor parameters.
    self.hierarchical = model_config.get("decoder", "flat") == "hierarchical"
    bar_embedding_size = 0
    if self.hierarchical:
      bar_embedding_size = model_config.conductor_hidden_size
      if model_config.get("conductor", "lstm") == "linear":
        if not num_bars:
          raise ValueError("The linear conductor needs the window's number of bars.")
        self.conductor = LinearConductor(latent, bar_embedding_size, num_bars, dtype=dtype,
                                         rngs=rngs)
      else:
        self.conductor = Conductor(latent, bar_embedding_size, model_config.conductor_layers,
                                   lstm_impl=impl, dtype=dtype, rngs=rngs, residual=residual,
                                   dropout_rate=dropout_rate)
    self.decoders = nnx.Dict({
        track: TrackDecoder(latent, hidden, model_config.decoder_layers, lstm_impl=impl,
                            dtype=dtype, rngs=rngs, residual=residual,
                            bar_embedding_size=bar_embedding_size, dropout_rate=dropout_rate,
                            step_position=model_config.get("step_position", False))
        for track in TRACKS})
    self.critic_net = Critic(latent, model_config.critic_hidden_size, self.num_components,
                             dtype=dtype, rngs=rngs)

  def encode(self, tokens: jax.Array,
             dropout_key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """tokens int [B, T, 4] -> (mu, logvar) [B, N_z]; dropout_key: training's dropout."""
    return self.encoder(tokens, dropout_key)

  def decode(self, z: jax.Array, num_steps: int,
             dropout_key: jax.Array | None = None) -> jax.Array:
    """z [B, N_z] -> logits [B, T, 4, 130] (float32); dropout_key: training's dropout."""
    bar_embeddings = None
    if self.hierarchical:  # One conductor for the four tracks, as in MusicVAE's trio model.
      if num_steps % STEPS_PER_BAR:
        raise ValueError(f"The hierarchical decoder decodes whole bars; {num_steps} steps are "
                         f"not a multiple of {STEPS_PER_BAR}.")
      bar_embeddings = self.conductor(z, num_steps // STEPS_PER_BAR,
                                      _layer_key(dropout_key, len(TRACKS)))
    # One dropout key per track decoder (and one for the conductor above), or none.
    track_keys = ([None] * len(TRACKS) if dropout_key is None else
                  [_layer_key(dropout_key, i) for i in range(len(TRACKS))])
    # Whole-layer kernels (cuDNN through JAX) have no vmap rule: they run one by one.
    if not lstm.batches_well() or self.decoders[TRACKS[0]].layers[0].runs_whole_layers:
      logits = jnp.stack([self.decoders[track](z, num_steps, bar_embeddings, key)
                          for track, key in zip(TRACKS, track_keys)], axis=2)
      return logits.transpose(1, 0, 2, 3)
    # The four decoders have the same structure, so they can run as one: every LSTM kernel call
    # then carries the four tracks' recurrences at once and each input projection is one
    # batched matmul.
    decoders = [self.decoders[track] for track in TRACKS]
    if dropout_key is None:
      logits = _vmap_over_modules(
          decoders, lambda decoder: decoder(z, num_steps, bar_embeddings))
    else:
      logits = _vmap_over_modules(
          decoders, lambda decoder, key: decoder(z, num_steps, bar_embeddings, key),
          jnp.stack(track_keys))
    return logits.transpose(2, 1, 0, 3)  # [4, T, B, 130] -> [B, T, 4, 130]

  def critic(self, z: jax.Array, genres_one_hot: jax.Array | None = None) -> jax.Array:
    """z [B, N_z] (+ component one-hot [B, K] with the flower prior) -> scores [B]."""
    return self.critic_net(z, genres_one_hot)


def reparameterize(key: jax.Array, mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """z = mu + sigma * eps with sigma = exp(logvar / 2)."""
  return mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape, mu.dtype)
