"""A trained run, ready to use: load it, encode windows, decode codes, draw from its prior.

`load_run(workdir)` reads the run's config.json and genres.json, builds the model's abstract
shape with nnx.eval_shape (no initialisation) and restores the parameters alone (no optimizer
state) from the newest checkpoint. A code is the posterior mean mu (deterministic); decoding
takes the most likely token of every step and track. Moving codes around the prior (nearest
flower component, genre transfer, interpolation) is musae_jax/priors.py's.
"""

import os

from absl import logging
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from data_pipeline.tokens import STEPS_PER_BAR
from musae_common.errors import UserError
from musae_jax import checkpointing
from musae_jax import model as model_lib
from musae_jax import priors
from musae_jax.model import MusAE

DEFAULT_BATCH_SIZE = 128  # Windows per encode/decode call: bounds memory on long inputs.
# Inputs of more chunks than this show a progress bar (a whole validation split takes minutes).
PROGRESS_MIN_CHUNKS = 8


class Run:
  """A trained MusAE ready for inference: config, genre vocabulary, parameters, jitted calls."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict, genres: list[str],
               step: int, graphdef: nnx.GraphDef, params: nnx.State):
    self.workdir = workdir
    self.config = config
    self.genres = list(genres)
    self.step = step
    self.params = params
    self.graphdef = graphdef
    self.bars = int(config.data.bars)
    self.num_steps = self.bars * STEPS_PER_BAR
    self.latent_size = int(config.model.latent_size)
    self.prior = config.model.prior
    self.num_components = priors.component_count(self.prior, len(self.genres))

    def encode(params, tokens):
      mu, _ = nnx.merge(graphdef, params).encode(tokens)
      return mu

    def decode(params, codes):
      logits = nnx.merge(graphdef, params).decode(codes, self.num_steps)
      return jnp.argmax(logits, axis=-1).astype(jnp.uint8)

    def posterior_std(params, tokens):
      _, logvar = nnx.merge(graphdef, params).encode(tokens)
      return jnp.exp(0.5 * logvar)

    self._encode = jax.jit(encode)
    self._decode = jax.jit(decode)
    self._posterior_std = jax.jit(posterior_std)

  def encode(self, tokens: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """int [N, T, 4] windows of this run's length -> float32 [N, N_z] codes (posterior means)."""
    tokens = np.asarray(tokens)
    self._check_windows(tokens)
    return _in_chunks(lambda x: self._encode(self.params, jnp.asarray(x, jnp.int32)),
                      tokens, batch_size, np.float32, "encoding")

  def posterior_std(self, tokens: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE
                    ) -> np.ndarray:
    """int [N, T, 4] windows -> float32 [N, N_z]: sigma of q(z | x), beside encode's mean."""
    tokens = np.asarray(tokens)
    self._check_windows(tokens)
    return _in_chunks(lambda x: self._posterior_std(self.params, jnp.asarray(x, jnp.int32)),
                      tokens, batch_size, np.float32, "encoding")

  def decode(self, codes: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """float [N, N_z] codes -> uint8 [N, T, 4] tokens (argmax of every step and track)."""
    codes = np.asarray(codes, np.float32)
    return _in_chunks(lambda z: self._decode(self.params, jnp.asarray(z)), codes, batch_size,
                      np.uint8, "decoding")

  def _check_windows(self, tokens: np.ndarray) -> None:
    if tokens.ndim != 3 or tokens.shape[1:] != (self.num_steps, 4):
      raise ValueError(f"expected windows of shape [N, {self.num_steps}, 4], got {tokens.shape}")

  def reconstruct(self, tokens: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    return self.decode(self.encode(tokens, batch_size), batch_size)


def _in_chunks(function, inputs: np.ndarray, batch_size: int, dtype, what: str) -> np.ndarray:
  """Applies a jitted function chunk by chunk, padding each chunk to a power of two (at most
  batch_size) so that a few compiled shapes serve every input size. Long inputs show progress
  (on stderr, `what` naming the work)."""
  count = inputs.shape[0]
  if count == 0:
    raise ValueError("nothing to encode or decode (0 rows)")
  outputs = []
  starts = range(0, count, batch_size)
  if len(starts) > PROGRESS_MIN_CHUNKS:
    starts = tqdm.tqdm(starts, desc=f"{what} {count} windows", unit="batch", mininterval=5.0,
                       dynamic_ncols=True)
  for start in starts:
    chunk = inputs[start:start + batch_size]
    padded_size = min(batch_size, 1 << (len(chunk) - 1).bit_length())
    padding = np.zeros((padded_size - len(chunk),) + chunk.shape[1:], chunk.dtype)
    result = np.asarray(jax.device_get(function(np.concatenate([chunk, padding]))))
    outputs.append(result[:len(chunk)].astype(dtype))
  return np.concatenate(outputs)


def load_run(workdir: str, step: int | None = None) -> Run:
  """A checkpoint of a training run directory (the newest, or the given step), parameters only."""
  config = checkpointing.read_run_config(workdir)
  genres = checkpointing.read_run_genres(workdir)
  model_lib.apply_matmul_precision(config.model)  # Decoded as the run was trained.
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise UserError(f"{workdir}: no checkpoints/ folder; train first (python -m musae_jax.main).")
  checkpoints = checkpointing.Checkpointer(workdir, async_save=False)
  try:
    saved = checkpoints.all_steps()
    if not saved:
      raise UserError(f"{directory}: no complete checkpoint yet; train longer or wait for the "
                      "first save.")
    if step is not None and step not in saved:
      raise UserError(f"{directory}: no checkpoint of step {step}; it has steps "
                      f"{', '.join(map(str, sorted(saved)))}.")
    abstract_model = nnx.eval_shape(
        lambda: MusAE(config.model, len(genres), rngs=nnx.Rngs(params=0),
                      num_bars=config.data.bars))
    graphdef, abstract_params = nnx.split(abstract_model, nnx.Param)

    def restore(saved_step: int):
      return checkpoints.restore_params(saved_step, abstract_params)

    if step is not None:  # The step asked for, or a one-line error.
      try:
        params = restore(step)
      except checkpointing.DAMAGED_CHECKPOINT_ERRORS as e:
        raise UserError(f"{directory}/{step} cannot be read ({checkpointing.damage_summary(e)}); "
                        f"steps saved: {', '.join(map(str, sorted(saved)))}.") from None
    else:  # The newest that reads back (as training resumes).
      found = checkpoints.newest_readable(sorted(saved, reverse=True), restore)
      if found is None:
        raise UserError(f"{directory}: none of the checkpoints (steps "
                        f"{', '.join(map(str, sorted(saved)))}) can be read; they are damaged.")
      step, params = found
  finally:
    checkpoints.close()
  logging.info("Loaded %s at step %d (%s prior, %d genres).", workdir, step, config.model.prior,
               len(genres))
  return Run(workdir, config, genres, step, graphdef, params)


def genre_component(run: Run, genre: str) -> int:
  """The flower component of a genre tag; a clear error for a Gaussian run or an unknown tag."""
  if run.prior != "flower":
    raise UserError(f"{run.workdir} was trained with the {run.prior} prior, which has no genre "
                    "components; genres need a run trained with model.prior='flower'.")
  if genre not in run.genres:
    shown = ", ".join(run.genres[:40]) + (" ..." if len(run.genres) > 40 else "")
    raise UserError(f"genre {genre!r} is not in the run's vocabulary ({run.workdir}/genres.json): "
                    f"{shown or 'the vocabulary is empty'}.")
  return run.genres.index(genre)


def component_name(run: Run, component: int) -> str:
  return run.genres[component] if component < len(run.genres) else "unlabeled"


def prior_codes(run: Run, seed: int, num: int, component: int | None = None,
                temperature: float = 1.0) -> np.ndarray:
  """float32 [num, N_z] draws from the run's prior (one flower component when given; with the
  flower prior and no component, components are drawn uniformly).

  temperature scales each draw's distance from its distribution's centre (the component mean,
  or 0 for the Gaussian): 1 is the prior itself, below 1 gives more typical codes.
  """
  if temperature < 0:
    raise UserError(f"--temperature={temperature} must be >= 0.")
  key = jax.random.key(seed)
  component_key, sample_key = jax.random.split(key)
  model = run.config.model
  if run.prior == "flower":
    if component is None:
      components = jax.random.randint(component_key, (num,), 0, run.num_components)
    else:
      components = jnp.full((num,), component, jnp.int32)
    codes = priors.sample_prior(sample_key, "flower", run.latent_size, num, components,
                                run.num_components, model.flower_radial_variance,
                                model.flower_other_variance)
    centres = priors.flower_means(run.num_components, run.latent_size)[components]
  else:
    codes = priors.sample_prior(sample_key, run.prior, run.latent_size, num)
    centres = jnp.zeros_like(codes)
  return np.asarray(centres + temperature * (codes - centres), np.float32)
