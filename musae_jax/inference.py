"""Using a trained run: load it, encode windows, decode codes, move codes around the prior.

`load_run(workdir)` reads the run's config.json and genres.json, builds the model's abstract
shape with nnx.eval_shape (no initialisation) and restores the parameters alone (no optimizer
state) from the newest checkpoint. A code is the posterior mean mu (deterministic); decoding
takes the most likely token of every step and track.

Flower-prior geometry (musae_jax/priors.py): component k has its mean on the unit circle of
dims 0-1 at angle 2*pi*k/K and a covariance rotated to that angle, so rotating dims 0-1 by
2*pi*(j - k)/K maps component k's distribution exactly onto component j's. That rotation is how
a code moves from one genre to another (`move_to_component`).
"""

import dataclasses
import os

from absl import logging
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from data_pipeline import genres as genres_lib
from data_pipeline import song as song_lib
from data_pipeline.tokens import STEPS_PER_BAR
from musae_jax import checkpointing
from musae_jax import priors
from musae_jax.errors import UserError
from musae_jax.model import MusAE

DEFAULT_BATCH_SIZE = 128  # Windows per encode/decode call: bounds memory on long inputs.
_READ_CHUNK = 1024  # Dataset rows read per random-access call.


class Run:
  """A trained MusAE ready for inference: config, genre vocabulary, parameters, jitted calls."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict, genres: list[str],
               step: int, graphdef: nnx.GraphDef, params: nnx.State):
    self.workdir = workdir
    self.config = config
    self.genres = list(genres)
    self.step = step
    self.params = params
    self.bars = int(config.data.bars)
    self.num_steps = self.bars * STEPS_PER_BAR
    self.latent_size = int(config.model.latent_size)
    self.prior = config.model.prior
    # Flower: one component per genre, then the "unlabeled" one (priors.draw_components).
    self.num_components = len(self.genres) + 1 if self.prior == "flower" else 0

    def encode(params, tokens):
      mu, _ = nnx.merge(graphdef, params).encode(tokens)
      return mu

    def decode(params, codes):
      logits = nnx.merge(graphdef, params).decode(codes, self.num_steps)
      return jnp.argmax(logits, axis=-1).astype(jnp.uint8)

    self._encode = jax.jit(encode)
    self._decode = jax.jit(decode)

  def encode(self, tokens: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """int [N, T, 4] windows of this run's length -> float32 [N, N_z] codes (posterior means)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 3 or tokens.shape[1:] != (self.num_steps, 4):
      raise ValueError(f"expected windows of shape [N, {self.num_steps}, 4], got {tokens.shape}")
    return _in_chunks(lambda x: self._encode(self.params, jnp.asarray(x, jnp.int32)),
                      tokens, batch_size, np.float32)

  def decode(self, codes: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """float [N, N_z] codes -> uint8 [N, T, 4] tokens (argmax of every step and track)."""
    codes = np.asarray(codes, np.float32)
    return _in_chunks(lambda z: self._decode(self.params, jnp.asarray(z)), codes, batch_size,
                      np.uint8)

  def reconstruct(self, tokens: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    return self.decode(self.encode(tokens, batch_size), batch_size)


def _in_chunks(function, inputs: np.ndarray, batch_size: int, dtype) -> np.ndarray:
  """Applies a jitted function chunk by chunk, padding each chunk to a power of two (at most
  batch_size) so that a few compiled shapes serve every input size."""
  count = inputs.shape[0]
  if count == 0:
    raise ValueError("nothing to encode or decode (0 rows)")
  outputs = []
  for start in range(0, count, batch_size):
    chunk = inputs[start:start + batch_size]
    padded_size = min(batch_size, 1 << (len(chunk) - 1).bit_length())
    padding = np.zeros((padded_size - len(chunk),) + chunk.shape[1:], chunk.dtype)
    result = np.asarray(jax.device_get(function(np.concatenate([chunk, padding]))))
    outputs.append(result[:len(chunk)].astype(dtype))
  return np.concatenate(outputs)


def load_run(workdir: str) -> Run:
  """The newest checkpoint of a training run directory, parameters only."""
  config = checkpointing.read_run_config(workdir)
  genres = checkpointing.read_run_genres(workdir)
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise UserError(f"{workdir}: no checkpoints/ folder; train first (python -m musae_jax.main).")
  checkpoints = checkpointing.Checkpointer(workdir, async_save=False)
  try:
    step = checkpoints.latest_step()
    if step is None:
      raise UserError(f"{directory}: no complete checkpoint yet; train longer or wait for the "
                      "first save.")
    abstract_model = nnx.eval_shape(
        lambda: MusAE(config.model, len(genres), rngs=nnx.Rngs(params=0)))
    graphdef, abstract_params = nnx.split(abstract_model, nnx.Param)
    params = checkpoints.restore_params(step, abstract_params)
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


def nearest_component(codes: np.ndarray, num_components: int) -> np.ndarray:
  """int [N]: the flower component whose mean is nearest to each code.

  ||z - mu_k||^2 = ||z||^2 - 2 z.mu_k + 1, so the nearest mean is the one with the largest
  projection of dims 0-1 on the component's direction.
  """
  angles = 2.0 * np.pi * np.arange(num_components) / num_components
  directions = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
  return np.argmax(np.asarray(codes)[:, :2] @ directions.T, axis=-1)


def move_to_component(codes: np.ndarray, source: np.ndarray | int, target: np.ndarray | int,
                      num_components: int) -> np.ndarray:
  """Rotates dims 0-1 of each code by 2*pi*(target - source)/K: component source's prior maps
  onto component target's, and a code keeps its offset from its component's mean."""
  codes = np.array(codes, np.float32, copy=True)
  angle = 2.0 * np.pi * (np.asarray(target) - np.asarray(source)) / num_components
  cos, sin = np.cos(angle), np.sin(angle)
  x, y = codes[:, 0].copy(), codes[:, 1].copy()
  codes[:, 0] = cos * x - sin * y
  codes[:, 1] = sin * x + cos * y
  return codes


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


def interpolate(start: np.ndarray, end: np.ndarray, alphas: np.ndarray,
                spherical: bool = False) -> np.ndarray:
  """[len(alphas), N_z] codes between two [N_z] codes: linear (the paper's), or spherical
  (slerp: keeps the norm's path on the great circle, as MusicVAE offers)."""
  start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
  alphas = np.asarray(alphas, np.float64)[:, None]
  if spherical:
    cos_omega = np.dot(start, end) / max(np.linalg.norm(start) * np.linalg.norm(end), 1e-12)
    omega = np.arccos(np.clip(cos_omega, -1.0, 1.0))
    if omega > 1e-6:
      return ((np.sin((1 - alphas) * omega) * start + np.sin(alphas * omega) * end)
              / np.sin(omega)).astype(np.float32)
  return ((1 - alphas) * start + alphas * end).astype(np.float32)


def describe_bars(start_bars: np.ndarray) -> str:
  """'0-5, 9, 12-40': sorted distinct bar numbers as ranges."""
  bars = sorted(set(int(b) for b in start_bars))
  parts, first = [], None
  for i, bar in enumerate(bars):
    first = bar if first is None else first
    if i + 1 == len(bars) or bars[i + 1] != bar + 1:
      parts.append(str(first) if first == bar else f"{first}-{bar}")
      first = None
  return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class InputWindow:
  """One window of a user's song, with what is needed to write the result back as MIDI."""
  path: str
  tokens: np.ndarray  # uint8 [T, 4]
  start_bar: int  # counted from 0
  programs: tuple[int, int, int, int]  # GM programs of the song's main track combination
  tempo_qpm: float

  @property
  def stem(self) -> str:
    return os.path.splitext(os.path.basename(self.path))[0]


def song_windows(path: str, bars: int) -> song_lib.SongWindows:
  """Every valid window of a song (the training pipeline's filters), or a one-line UserError."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such file.")
  try:
    windows = song_lib.extract_windows(path, bars)
  except song_lib.RejectedSong as rejection:
    raise UserError(str(rejection)) from None
  if len(windows.tokens) == 0:
    raise UserError(
        f"{path}: none of its {bars}-bar windows passes the filters ({windows.num_bars} bars; "
        f"{windows.dropped.get('silence', 0)} windows have a track silent for more than a bar).")
  return windows


def song_window(path: str, bars: int, start_bar: int = -1) -> InputWindow:
  """The window of a song starting at start_bar (-1: its first valid window)."""
  return window_at(song_windows(path, bars), path, bars, start_bar)


def window_at(windows: song_lib.SongWindows, path: str, bars: int,
              start_bar: int = -1) -> InputWindow:
  """song_window for a song's windows already extracted."""
  if start_bar < 0:
    index = int(np.argmin(windows.start_bars))
  else:
    matches = np.flatnonzero(windows.start_bars == start_bar)
    if matches.size == 0:
      raise UserError(f"{path}: no valid {bars}-bar window starts at bar {start_bar} (bars count "
                      f"from 0; the song has {windows.num_bars} bars); valid start bars: "
                      f"{describe_bars(windows.start_bars)}.")
    index = int(matches[0])  # The song's main track combination comes first.
  return InputWindow(path, windows.tokens[index], int(windows.start_bars[index]),
                     tuple(windows.programs), float(windows.tempo_qpm))


@dataclasses.dataclass
class WindowSet:
  """Windows to analyse (a dataset split or a MIDI folder), with their songs and genres."""
  tokens: np.ndarray  # uint8 [N, T, 4]
  genres: np.ndarray  # float32 [N, G] k-hot over `vocabulary` (all-zero row: unlabeled)
  songs: np.ndarray  # int32 [N] index into song_names
  song_names: list[str]
  vocabulary: list[str]
  description: str  # where the windows come from, for the report
  rejected: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> songs

  def __len__(self) -> int:
    return len(self.tokens)


def _subsample(count: int, max_windows: int, seed: int) -> np.ndarray:
  if not max_windows or count <= max_windows:
    return np.arange(count)
  return np.sort(np.random.default_rng(seed).choice(count, max_windows, replace=False))


def split_windows(data_dir: str, bars: int, split: str, max_windows: int = 0,
                  seed: int = 0) -> WindowSet:
  """The windows of a built dataset split (all of them, or a seeded random max_windows)."""
  # The dataset stack (TFDS) is imported here only: generating from a song does not need it.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from data_pipeline import loader  # pylint: disable=g-import-not-at-top
  if not loader.dataset_exists(data_dir, bars):
    raise UserError(f"{loader.dataset_dir(data_dir, bars)}: no {bars}-bar dataset is built there; "
                    "pass --data_dir (or --midi_dir to window MIDI files on the fly).")
  vocabulary = loader.genre_vocabulary(data_dir, bars)
  try:
    source = tfds.data_source(loader.dataset_name(bars), split=split, data_dir=data_dir,
                              download=False)
  except ValueError as error:  # An unknown split name, or a split without any shard.
    raise UserError(f"{data_dir}: the {bars}-bar dataset has no readable {split!r} split "
                    f"({error}).") from None
  rows = _subsample(len(source), max_windows, seed)
  if rows.size == 0:
    raise UserError(f"{data_dir}: the {split} split of the {bars}-bar dataset is empty.")
  tokens, genres, song_paths = [], [], []
  for start in range(0, len(rows), _READ_CHUNK):
    for example in source.__getitems__(rows[start:start + _READ_CHUNK].tolist()):
      tokens.append(example["tokens"])
      genres.append(example["genres"])
      song = example["song"]
      song_paths.append(song.decode("utf-8") if isinstance(song, bytes) else str(song))
  song_names, songs = np.unique(np.array(song_paths), return_inverse=True)
  return WindowSet(np.stack(tokens).astype(np.uint8), np.stack(genres).astype(np.float32),
                   songs.astype(np.int32), song_names.tolist(), vocabulary,
                   f"the {split} split of {data_dir} ({bars}-bar windows)")


def midi_files(midi_dir: str) -> list[str]:
  """Every MIDI file under a folder, as the build lists them (a UserError if there is none)."""
  if not os.path.isdir(midi_dir):
    raise UserError(f"--midi_dir={midi_dir}: not a folder.")
  paths = [os.path.join(midi_dir, relative) for relative in genres_lib.list_midi_files(midi_dir)]
  if not paths:
    raise UserError(f"--midi_dir={midi_dir}: no .mid or .midi file in it.")
  return paths


def midi_dir_windows(midi_dir: str, bars: int, vocabulary: list[str],
                     genres_file: str | None = None, max_windows: int = 0,
                     seed: int = 0) -> WindowSet:
  """All windows of the songs in a MIDI folder, windowed with the training pipeline (no split).

  Songs the filters reject are counted by reason. Genre tags (from genres_file, see
  data_pipeline.genres) outside `vocabulary` (the run's genres) are ignored.
  """
  try:
    labels = genres_lib.load_labels(midi_dir, genres_file) if genres_file else {}
  except genres_lib.GenreLabelsError as error:
    raise UserError(str(error)) from None
  tokens, genres, songs, song_names = [], [], [], []
  rejected: dict[str, int] = {}
  for path in midi_files(midi_dir):
    try:
      windows = song_lib.extract_windows(path, bars)
    except song_lib.RejectedSong as rejection:
      rejected[rejection.reason] = rejected.get(rejection.reason, 0) + 1
      continue
    if len(windows.tokens) == 0:
      rejected["no_valid_window"] = rejected.get("no_valid_window", 0) + 1
      continue
    relative = os.path.relpath(path, midi_dir)
    k_hot = np.asarray(genres_lib.k_hot(labels.get(relative, []), vocabulary), np.float32)
    tokens.append(windows.tokens)
    genres.append(np.repeat(k_hot[None], len(windows.tokens), axis=0))
    songs.append(np.full(len(windows.tokens), len(song_names), np.int32))
    song_names.append(relative)
  if not tokens:
    raise UserError(f"--midi_dir={midi_dir}: no song gives a valid {bars}-bar window "
                    f"(rejected: {rejected}).")
  rows = _subsample(sum(len(t) for t in tokens), max_windows, seed)
  return WindowSet(np.concatenate(tokens)[rows],
                   np.concatenate(genres, axis=0)[rows],
                   np.concatenate(songs)[rows], song_names, list(vocabulary),
                   f"the MIDI files under {midi_dir} ({bars}-bar windows, all of them)", rejected)


def run_windows(run: Run, *, split: str | None = None, data_dir: str | None = None,
                midi_dir: str | None = None, genres_file: str | None = None,
                max_windows: int = 0, seed: int = 0) -> WindowSet:
  """The windows a tool analyses: a MIDI folder's when midi_dir is given, else a split of the
  run's dataset (data_dir defaults to the run's config.data.data_dir)."""
  if midi_dir:
    return midi_dir_windows(midi_dir, run.bars, run.genres, genres_file, max_windows, seed)
  return split_windows(data_dir or run.config.data.data_dir, run.bars, split, max_windows, seed)
