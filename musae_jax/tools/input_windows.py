"""The windows the tools read: one song's (a window to encode, restyle, continue), a built
dataset split's, or a whole MIDI folder's, all cut by the training pipeline's own filters."""

import dataclasses
import os

import numpy as np

from data_pipeline import genres as genres_lib
from data_pipeline import song as song_lib
from musae_common.errors import UserError
from musae_jax.tools.runs import Run

_READ_CHUNK = 1024  # Dataset rows read per random-access call.


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


def require_file(path: str) -> None:
  """A one-line UserError unless path is a file (the MIDI inputs of the tools)."""
  if os.path.isdir(path):
    raise UserError(f"{path}: a folder, not a MIDI file.")
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such file.")


def song_windows(path: str, bars: int) -> song_lib.SongWindows:
  """Every valid window of a song (the training pipeline's filters), or a one-line UserError."""
  require_file(path)
  windows = song_lib.extract_windows(path, bars)  # RejectedSong is a UserError.
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


def split_reconstruction(run: Run, data_dir: str, split: str, max_windows: int = 0
                         ) -> tuple[np.ndarray, np.ndarray]:
  """(targets, reconstructions from the posterior means), int32 [N, T, 4], of a split's windows
  (all, or a seeded random max_windows): what the error analyses (scripts/) compare."""
  windows = split_windows(data_dir, run.bars, split, max_windows)
  return windows.tokens.astype(np.int32), run.reconstruct(windows.tokens).astype(np.int32)


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
  labels = genres_lib.load_labels(midi_dir, genres_file) if genres_file else {}
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
