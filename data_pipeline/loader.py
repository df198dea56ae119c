"""Batches of musae_windows for training and evaluation, read without TensorFlow.

`tfds.data_source` gives random access to the array_record shards; grain shuffles, transposes
and batches. Training data is an endless stream: each epoch is a new permutation (seeded by seed
and epoch), and each batch draws one transposition per row from a generator seeded by seed and
the batch's index, so an example meets a new shift every epoch and a run resumed from
`iterator.get_state()` sees exactly the batches it would have seen. Each process reads its own
contiguous slice of every global batch, so the global batches do not depend on the number of
processes; batch sizes are per process.

Batches are dicts of numpy arrays: {"tokens": uint8 [B, T, 4], "genres": float32 [B, G]}, plus
{"mask": float32 [B]} from eval_batches.
"""

import functools
import hashlib
import json
import math
import os
from typing import Any, Iterator

from absl import flags
from absl import logging
import grain
import numpy as np
import tensorflow_datasets as tfds

from data_pipeline import augment
from data_pipeline import tokens as tokens_lib
from data_pipeline.musae_windows import build_stats as build_stats_lib
from data_pipeline.musae_windows import builder as builder_lib
from data_pipeline.musae_windows import example_codec
from musae_common.errors import UserError

# The validation rows are visited in one fixed random order, so that evaluating only the first
# max_batches batches still samples every song and genre rather than the first folders.
_EVAL_ORDER_SEED = 20200220
_READ_THREADS = 4  # Threads decoding and transposing batches (per process or grain worker).
_SONG_READ_CHUNK = 8192  # Records read at once when listing the songs of a split.


def dataset_name(bars: int) -> str:
  """The TFDS name of the windows dataset: "musae_windows/2bar" or "musae_windows/16bar"."""
  return f"musae_windows/{bars}bar"


def dataset_dir(data_dir: str, bars: int) -> str:
  """Folder of the built dataset: holds dataset_info.json, build_stats.json and the shards."""
  return builder_lib.dataset_dir(data_dir, bars)


def dataset_exists(data_dir: str, bars: int) -> bool:
  return os.path.exists(os.path.join(dataset_dir(data_dir, bars), "dataset_info.json"))


def _check_exists(data_dir: str, bars: int) -> None:
  if not dataset_exists(data_dir, bars):
    raise FileNotFoundError(
        f"{dataset_dir(data_dir, bars)}: the {dataset_name(bars)} dataset is not built there "
        f"(build it with: python -m data_pipeline.build --midi_dir=DIR --config={bars}bar "
        f"--data_dir={data_dir})")


def genre_vocabulary(data_dir: str, bars: int) -> list[str]:
  """The genre names of the dataset, in the order of the k-hot genres vector."""
  _check_exists(data_dir, bars)
  path = os.path.join(dataset_dir(data_dir, bars), builder_lib.VOCABULARY_FILE)
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def build_stats(data_dir: str, bars: int) -> dict[str, Any]:
  """The build_stats.json of the dataset."""
  _check_exists(data_dir, bars)
  path = os.path.join(dataset_dir(data_dir, bars), build_stats_lib.STATS_FILE)
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def num_examples(data_dir: str, bars: int, split: str) -> int:
  if split not in builder_lib.SPLITS:
    raise UserError(f"split={split!r}: must be one of {', '.join(builder_lib.SPLITS)}")
  _check_exists(data_dir, bars)
  splits = tfds.builder(dataset_name(bars), data_dir=data_dir).info.splits
  # The builder leaves out a split that got no song; here it is simply empty.
  return splits[split].num_examples if split in splits else 0


def _records(data_dir: str, bars: int, split: str):
  """Random access to the split's serialized records (decoded in batches by example_codec)."""
  if not num_examples(data_dir, bars, split):
    return []
  return tfds.data_source(dataset_name(bars), split=split, data_dir=data_dir, download=False,
                          deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)


def song_share(song: str) -> float:
  """A stable number in [0, 1) for a song path: the songs below f are a subset's share f.

  A hash of the path, so the subset is the same on every machine and run, and the songs kept at
  a smaller share are among those kept at a larger one (nested subsets for data-scaling studies).
  """
  return int.from_bytes(hashlib.sha256(song.encode()).digest()[:8], "big") / 2.0**64


def song_subset_rows(records, fraction: float) -> np.ndarray:
  """int64 row numbers of the records whose song's share (song_share) is below fraction."""
  if fraction >= 1.0:
    return np.arange(len(records))
  keep = []
  for start in range(0, len(records), _SONG_READ_CHUNK):
    rows = list(range(start, min(start + _SONG_READ_CHUNK, len(records))))
    songs = example_codec.decode_songs(records.__getitems__(rows))
    keep.extend(row for row, song in zip(rows, songs) if song_share(song) < fraction)
  return np.asarray(keep, np.int64)


def _read_decode_transpose(global_rows: np.ndarray, rng: np.random.Generator, *, records,
                           steps: int, num_genres: int, low: int, high: int, process_index: int,
                           process_count: int) -> dict[str, np.ndarray]:
  """This process's slice of one global batch, read, decoded and transposed.

  The random numbers are drawn for the whole global batch (one uniform per row), so a row gets
  the same shift whichever process reads it and however many processes there are.
  """
  uniforms = rng.random(len(global_rows))
  per_process = len(global_rows) // process_count
  mine = slice(process_index * per_process, (process_index + 1) * per_process)
  rows, uniforms = global_rows[mine], uniforms[mine]
  # One batched read: array_record answers many keys at once far faster than one by one.
  batch = example_codec.decode_batch(records.__getitems__(rows.tolist()), steps, num_genres)
  if (low, high) != (0, 0):
    lows, highs = augment.allowed_shifts(batch["tokens"], low, high)
    shifts = lows + np.floor(uniforms * (highs - lows + 1)).astype(lows.dtype)
    batch["tokens"] = augment.transpose(batch["tokens"], np.minimum(shifts, highs))
  return batch


def train_iterator(data_dir: str, bars: int, batch_size: int, seed: int, *,
                   transpose: tuple[int, int] = (-5, 6), process_index: int = 0,
                   process_count: int = 1, worker_count: int = 0, song_fraction: float = 1.0):
  """An endless iterator of augmented training batches (a grain DatasetIterator).

  Args:
    data_dir: TFDS data_dir holding the dataset.
    bars: 2 or 16.
    batch_size: rows per batch of this process; batches run on across epochs.
    seed: seeds the order of every epoch and every transposition.
    transpose: (lowest, highest) shift in semitones of the pitched tracks, clipped per example
      to keep notes in 0..127; (0, 0) turns augmentation off.
    process_index, process_count: this process's part of every global batch.
    worker_count: grain worker processes (0: read in this process's threads).
    song_fraction: share of the split's songs to train on (song_subset_rows picks them by a hash
      of their paths); 1 = all. For data-scaling studies: a run sees fewer songs, not fewer steps.

  Every process walks the same global sequence of batches of batch_size * process_count rows
  and reads only its own contiguous slice of each, so the processes' rows are disjoint and the
  global batches (content and augmentation) do not depend on the number of processes: 2
  processes of 2 devices train exactly like 1 process of 4.

  Returns:
    Iterator with get_state()/set_state() (a small JSON-serialisable dict).
  """
  if not 0.0 < song_fraction <= 1.0:
    raise UserError(f"song_fraction={song_fraction!r} must be in (0, 1].")
  records = _records(data_dir, bars, "train")
  global_batch_size = batch_size * process_count
  # Row numbers: the split's, or those of the chosen songs' windows.
  rows = (grain.MapDataset.range(len(records)) if song_fraction >= 1.0
          else grain.MapDataset.source(song_subset_rows(records, song_fraction)))
  if len(rows) < global_batch_size:
    of_songs = f" at song_fraction={song_fraction:g}" if song_fraction < 1.0 else ""
    raise UserError(f"{dataset_dir(data_dir, bars)}: the train split has {len(rows)} "
                     f"examples{of_songs}, fewer than one global batch of {global_batch_size} "
                     f"({process_count} processes x {batch_size})")
  low, high = transpose
  seed %= 2**32
  # Batches of row numbers: shuffling an endless dataset draws a new permutation per epoch, and
  # the random map gets a generator seeded by (seed, batch index), so each row's shift depends
  # on the epoch too.
  if song_fraction < 1.0:
    logging.info("Training on %d of the %d training windows: the songs of a %g%% share "
                 "(song_fraction=%g).", len(rows), len(records), 100 * song_fraction,
                 song_fraction)
  dataset = (rows.shuffle(seed=seed)
             .repeat()
             .batch(global_batch_size, drop_remainder=True)
             .random_map(functools.partial(_read_decode_transpose, records=records,
                                           steps=bars * tokens_lib.STEPS_PER_BAR,
                                           num_genres=len(genre_vocabulary(data_dir, bars)),
                                           low=low, high=high, process_index=process_index,
                                           process_count=process_count),
                         seed=(seed + 1) % 2**32))
  # Each element is a whole batch: a few threads and batches ahead keep the accelerator fed
  # (grain's default, 500 elements ahead, would decode hundreds of batches at every start).
  iter_dataset = dataset.to_iter_dataset(
      grain.ReadOptions(num_threads=_READ_THREADS, prefetch_buffer_size=2 * _READ_THREADS))
  if worker_count > 0:
    if not flags.FLAGS.is_parsed():
      # grain <= 0.2.18 reads one of its absl flags in mp_prefetch and fails outside an absl
      # app (google/grain#1355); unparsed flags hold their defaults anyway.
      flags.FLAGS.mark_as_parsed()
    iter_dataset = iter_dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return iter(iter_dataset)


def eval_batches(data_dir: str, bars: int, batch_size: int, split: str = "validation", *,
                 process_index: int = 0, process_count: int = 1,
                 max_batches: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """The split in batches without augmentation, the same every time.

  Every process yields the same number of batches (a collective eval step needs that); rows
  past the end of a process's part are padding: SILENT tokens, no genres, mask 0.

  Args:
    data_dir: TFDS data_dir holding the dataset.
    bars: 2 or 16.
    batch_size: rows per batch of this process.
    split: "validation" or "train".
    process_index, process_count: this process's part of the split.
    max_batches: stop after this many batches (0: the whole split).

  Yields:
    {"tokens": uint8 [B, T, 4], "genres": float32 [B, G], "mask": float32 [B]}.
  """
  source = _records(data_dir, bars, split)
  order = np.random.default_rng(_EVAL_ORDER_SEED).permutation(len(source))
  mine = order[process_index::process_count]
  num_batches = math.ceil(math.ceil(len(source) / process_count) / batch_size)
  if max_batches:
    num_batches = min(num_batches, max_batches)
  steps = bars * tokens_lib.STEPS_PER_BAR
  num_genres = len(genre_vocabulary(data_dir, bars))
  for index in range(num_batches):
    rows = mine[index * batch_size:(index + 1) * batch_size].tolist()
    batch = {"tokens": np.full((batch_size, steps, tokens_lib.NUM_TRACKS), tokens_lib.SILENT,
                               np.uint8),
             "genres": np.zeros((batch_size, num_genres), np.float32),
             "mask": np.zeros(batch_size, np.float32)}
    if rows:
      real = example_codec.decode_batch(source.__getitems__(rows), steps, num_genres)
      batch["tokens"][:len(rows)] = real["tokens"]
      batch["genres"][:len(rows)] = real["genres"]
      batch["mask"][:len(rows)] = 1.0
    yield batch
