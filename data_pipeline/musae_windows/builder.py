"""The TFDS builder of musae_windows/2bar and musae_windows/16bar.

Each example is one window of one song and one drums x bass x guitar combination (see
example_codec.features). Splits "train" and "validation" are song-disjoint (artist-disjoint when a
manifest names artists), decided by data_pipeline.split from the MD5 of each file.

TFDS builders normally download their sources; this one reads a local MIDI folder given as
builder arguments, so it is built from Python (data_pipeline.build) rather than by `tfds build`,
which would import TensorFlow:

  builder = MusaeWindows(config="2bar", data_dir=OUT, midi_dir=MIDI, genres_file=GENRES)
  builder.download_and_prepare(file_format="array_record")

How it is written: worker processes extract the windows of each file (timed_pool, with a
per-file time limit), and the parent writes the records in file order, so the dataset does not
depend on the number of workers. With writer="direct" (the default) records are serialized by
example_codec and streamed into array_record shards (shard_writer); with writer="tfds" they go
through TFDS's generic GeneratorBasedBuilder path (_split_generators/_generate_examples), which
gives the same dataset several times slower and holds every example in memory: it is kept as the
reference the fast path is tested against. Records are stored in song order (shuffling is the
loader's job), windows of a song in start-bar order. A split that gets no song (possible only
for a handful of files) is left out of the dataset, as TFDS cannot open an empty split.

Beside dataset_info.json the build writes genre_vocabulary.json (the genre names, in k-hot
order; also in the dataset's metadata) and build_stats.json (see build_stats).
"""

import csv
import dataclasses
import json
import os
import time
from typing import Any, Iterator

from absl import logging
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import download
from tensorflow_datasets.core import splits as splits_lib
import tqdm

from data_pipeline import genres as genres_lib
from data_pipeline import split as split_lib
from data_pipeline import tokens as tokens_lib
from data_pipeline.musae_windows import build_stats
from data_pipeline.musae_windows import example_codec
from data_pipeline.musae_windows import extraction
from data_pipeline.musae_windows import shard_writer
from data_pipeline.musae_windows import timed_pool
from musae_common.errors import UserError

SPLITS = (split_lib.TRAIN, split_lib.VALIDATION)
VOCABULARY_FILE = "genre_vocabulary.json"
MIDI_EXTENSIONS = genres_lib.MIDI_EXTENSIONS  # The files a build reads (and labels can name).
WRITERS = ("direct", "tfds")


class BuildError(UserError):
  """A problem with the build's input (folder, labels, manifest), in one sentence."""


@dataclasses.dataclass
class MusaeWindowsConfig(tfds.core.BuilderConfig):
  bars: int = 2  # Window length in bars (16 steps each).


@dataclasses.dataclass(frozen=True)
class _Song:
  """A kept song, ready to be written."""
  path: str  # Relative to midi_dir, "/"-separated.
  split: str
  genres: np.ndarray  # float32 [G] k-hot.
  windows: Any  # song.SongWindows


def _available_cores() -> int:
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))  # Respects CPU pinning (containers, batch jobs).
  return os.cpu_count() or 1


def config_name(bars: int) -> str:
  """The builder config of bars-long windows: "2bar" or "16bar"."""
  names = {config.bars: config.name for config in MusaeWindows.BUILDER_CONFIGS}
  if bars not in names:
    raise BuildError(f"bars={bars}: musae_windows has configs for "
                     f"{' and '.join(map(str, names))} bars only")
  return names[bars]


def dataset_dir(data_dir: str, bars: int) -> str:
  """Folder of a built dataset (dataset_info.json, shards, genre vocabulary, build stats)."""
  return os.path.join(data_dir, MusaeWindows.name, config_name(bars), str(MusaeWindows.VERSION))


def read_artists(manifest: str) -> dict[str, str]:
  """{path relative to the MIDI folder: artist} from a CSV with `path` and `artist` columns."""
  try:
    with open(manifest, newline="", encoding="utf-8") as f:
      reader = csv.DictReader(f)
      missing = {"path", "artist"} - set(reader.fieldnames or ())
      if missing:
        raise BuildError(f"{manifest}: the manifest has no {' or '.join(sorted(missing))} "
                         "column (it needs `path` and `artist`)")
      return {row["path"]: row["artist"].strip() for row in reader if row["artist"].strip()}
  except (OSError, UnicodeDecodeError, csv.Error) as exc:
    raise BuildError(f"{manifest}: cannot read the manifest ({exc})") from None


class MusaeWindows(tfds.core.GeneratorBasedBuilder):
  """MusAE training windows: 4-track monophonic tokens cut from multitrack MIDI songs."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [
      MusaeWindowsConfig(name="2bar", bars=2,
                         description="2-bar windows (32 steps), one starting at every bar."),
      MusaeWindowsConfig(name="16bar", bars=16,
                         description="16-bar windows (256 steps), one starting at every bar."),
  ]

  def __init__(self, *, midi_dir: str | None = None, genres_file: str | None = None,
               manifest: str | None = None, workers: int = 0, max_silent_bars: float = 1.0,
               max_combinations: int = 8, validation_fraction: float = 0.2,
               file_time_limit: float = 60.0, shard_bytes: int = 64 << 20,
               writer: str = "direct", **kwargs):
    """Arguments beyond TFDS's own (config, data_dir, ...) only matter when building.

    Args:
      midi_dir: folder searched recursively for .mid/.midi files.
      genres_file: labels for data_pipeline.genres.load_labels (None: no genres, G = 0).
      manifest: CSV with `path` (relative to midi_dir) and `artist` columns; songs of one
        artist then share a split. None: split by file content only.
      workers: extraction processes (0: one per available core).
      max_silent_bars: windows with a track silent for longer are dropped.
      max_combinations: most drums x bass x guitar combinations per song.
      validation_fraction: share of songs (or artists) in the validation split.
      file_time_limit: seconds one file may take before it is rejected as "timeout".
      shard_bytes: a new shard is started once a shard holds this many record bytes.
      writer: "direct" (fast) or "tfds" (reference), see the module docstring.
      **kwargs: for tfds.core.GeneratorBasedBuilder (config, data_dir, file_format, ...).
    """
    if writer not in WRITERS:
      raise ValueError(f"writer must be one of {WRITERS}, got {writer!r}")
    self._midi_dir = midi_dir
    self._genres_file = genres_file
    self._manifest = manifest
    self._workers = workers or _available_cores()
    self._max_silent_bars = max_silent_bars
    self._max_combinations = max_combinations
    self._validation_fraction = validation_fraction
    self._file_time_limit = file_time_limit
    self._shard_bytes = shard_bytes
    self._writer = writer
    self._labels: dict[str, list[str]] = {}
    self._build_vocabulary: list[str] | None = None
    if midi_dir is not None and genres_file:
      # Read before TFDS asks for _info(): the vocabulary sets the shape of the genres feature.
      try:
        self._labels = genres_lib.load_labels(midi_dir, genres_file)
      except genres_lib.GenreLabelsError as exc:
        raise BuildError(str(exc)) from None
      self._build_vocabulary = genres_lib.build_vocabulary(self._labels)
    elif midi_dir is not None:
      self._build_vocabulary = []
    self.stats: dict[str, Any] | None = None  # Set by a build (the content of build_stats.json).
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)

  @property
  def bars(self) -> int:
    return self.builder_config.bars

  @property
  def genre_vocabulary(self) -> list[str]:
    """Genre names in k-hot order: those stored with the dataset, else those being built."""
    stored = os.path.join(self.data_dir, VOCABULARY_FILE)
    if os.path.exists(stored):
      with open(stored, encoding="utf-8") as f:
        return json.load(f)
    return list(self._build_vocabulary or [])

  def _info(self) -> tfds.core.DatasetInfo:
    vocabulary = self.genre_vocabulary
    info = self.dataset_info_from_configs(
        features=example_codec.features(self.bars * tokens_lib.STEPS_PER_BAR, len(vocabulary)),
        metadata=tfds.core.MetadataDict(genre_vocabulary=vocabulary),
        description=_DESCRIPTION,
        homepage="https://github.com/Andrea-V/MusAE",  # The paper's code.
        citation=_CITATION,
        disable_shuffling=True,  # Keep song order; the loader shuffles.
    )
    # This dataset is never in TFDS's public bucket. TFDS looks it up there whenever a builder is
    # made for data not built yet, and leaves an empty temporary directory behind each time.
    info.initialize_from_bucket = lambda: None
    return info

  # --- Building -----------------------------------------------------------------------------

  def _download_and_prepare(self, dl_manager: download.DownloadManager,
                            download_config: download.DownloadConfig) -> None:
    if self._midi_dir is None:
      raise BuildError(f"{self.name}/{self.builder_config.name} is not built in "
                       f"{self.data_dir_root}, and no midi_dir was given to build it from")
    if self._writer == "tfds":
      super()._download_and_prepare(dl_manager, download_config)
    else:
      writers = {split: shard_writer.SplitWriter(self._get_filename_template(split),
                                                 self._shard_bytes) for split in SPLITS}
      encoder = example_codec.SongRecordEncoder(self.bars * tokens_lib.STEPS_PER_BAR)
      for song in self._songs():
        windows = song.windows
        writers[song.split].write(encoder.encode(song.path, song.genres, windows.tokens,
                                                 windows.start_bars, windows.combinations))
      # A split without examples is left out: TFDS cannot open an empty split (tiny corpora).
      self.info.set_splits(splits_lib.SplitDict(
          [w.finish() for w in writers.values() if w.num_examples]))
    with open(os.path.join(self.data_dir, VOCABULARY_FILE), "w", encoding="utf-8") as f:
      json.dump(self._build_vocabulary, f, indent=1)
    with open(os.path.join(self.data_dir, build_stats.STATS_FILE), "w", encoding="utf-8") as f:
      json.dump(self.stats, f, indent=1)

  def _split_generators(self, dl_manager: download.DownloadManager):
    del dl_manager
    songs = list(self._songs())  # The reference path: everything in memory.
    return {split: self._generate_examples(songs, split) for split in SPLITS
            if any(song.split == split for song in songs)}

  def _generate_examples(self, songs: list[_Song], split: str):
    key = 0  # Integer keys in song order: with shuffling disabled, TFDS sorts by key.
    for song in songs:
      windows = song.windows
      for index in range(len(windows.tokens)):
        key += 1
        if song.split == split:
          yield key, {"tokens": windows.tokens[index], "genres": song.genres,
                      "song": song.path, "start_bar": windows.start_bars[index],
                      "combination": windows.combinations[index]}

  def _songs(self) -> Iterator[_Song]:
    """Extracts every file in parallel; yields the kept songs in file order, counts the rest."""
    midi_dir = self._midi_dir
    if not os.path.isdir(midi_dir):
      raise BuildError(f"{midi_dir}: not a folder")
    files = genres_lib.list_midi_files(midi_dir)
    if not files:
      raise BuildError(f"{midi_dir}: no MIDI files ({', '.join(MIDI_EXTENSIONS)}) in it")
    artists = read_artists(self._manifest) if self._manifest else {}
    if artists and not any(path in artists for path in files):
      logging.warning("%s: no file of %s is listed in it; splitting by file content only.",
                      self._manifest, midi_dir)
    workers = min(self._workers, len(files))
    stats = build_stats.BuildStats(
        dataset=f"{self.name}/{self.builder_config.name}", bars=self.bars,
        genre_vocabulary=self._build_vocabulary,
        options={"midi_dir": midi_dir, "genres_file": self._genres_file,
                 "manifest": self._manifest, "workers": workers,
                 "max_silent_bars": self._max_silent_bars,
                 "max_combinations": self._max_combinations,
                 "validation_fraction": self._validation_fraction,
                 "file_time_limit_s": self._file_time_limit, "writer": self._writer})
    logging.info("Building %s from %d files in %s with %d workers.", stats.dataset, len(files),
                 midi_dir, workers)
    start, start_cpu = time.monotonic(), time.process_time()
    tasks = (extraction.Task(os.path.join(midi_dir, path), self.bars, self._max_silent_bars,
                             self._max_combinations) for path in files)
    pool = timed_pool.TimedPool(extraction.extract, workers, self._file_time_limit)
    progress = tqdm.tqdm(total=len(files), unit=" files", desc=f"Building {stats.dataset}",
                         mininterval=1.0, smoothing=0.1)
    with pool, progress:
      for path, (task, result) in zip(files, pool.imap(tasks)):
        song = self._count(stats, path, task, result, artists)
        progress.set_postfix(kept=stats.files_kept, rejected=stats.files_seen - stats.files_kept,
                             refresh=False)
        progress.update()
        if song is not None:
          yield song
      stats.worker_restarts = pool.restarts
    stats.seconds = time.monotonic() - start
    stats.writer_cpu_seconds = time.process_time() - start_cpu
    self.stats = stats.as_dict()
    if not stats.windows_kept:
      raise BuildError(f"{midi_dir}: none of its {len(files)} MIDI files gave a window "
                       f"(rejected: {build_stats.format_counts(stats.files_rejected)})")
    logging.info("%s", build_stats.summary(self.stats).splitlines()[0])

  def _count(self, stats: build_stats.BuildStats, path: str, task: extraction.Task, result: Any,
             artists: dict[str, str]) -> _Song | None:
    """Adds one file's outcome to stats; returns the song to write, if it is kept."""
    if isinstance(result, timed_pool.TaskFailure):
      result = extraction.Rejection(result.kind, f"{task.path}: rejected: {result.detail}")
    if isinstance(result, extraction.Rejection):
      stats.add_rejection(result.reason, result.dropped, result.cpu_seconds)
      logging.warning("%s", result.message)
      return None
    vocabulary = self._build_vocabulary
    genres = genres_lib.k_hot(self._labels.get(path, []), vocabulary)
    split = split_lib.song_split(result.md5, self._validation_fraction, artists.get(path))
    windows = result.windows
    stats.add_song(split, len(windows.tokens), windows.dropped,
                   [name for name, on in zip(vocabulary, genres) if on], result.cpu_seconds)
    return _Song(path, split, genres, windows)


_DESCRIPTION = """MusAE training windows: 2 or 16 bars of 4-track monophonic tokens (drums, bass,
guitar/piano, strings; 16 steps per bar, 130 classes: note onset 0..127, silent, hold) cut at
every bar of multitrack 4/4 MIDI songs, one example per drums x bass x guitar track
combination, with the song's k-hot genres. Splits are song-disjoint (artist-disjoint when
artists are known)."""

_CITATION = """
@inproceedings{valenti2020musae,
  title={Learning a Latent Space of Style-Aware Symbolic Music Representations by Adversarial
         Autoencoders},
  author={Valenti, Andrea and Carta, Antonio and Bacciu, Davide},
  booktitle={European Conference on Artificial Intelligence (ECAI)},
  year={2020}
}
"""
