"""The grain loader on a small real dataset: batches, epochs, resume, augmentation, shards, eval."""

import collections
import hashlib
import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import default
from data_pipeline import build
from data_pipeline import loader
from data_pipeline import split as split_lib
from data_pipeline import tokens as tokens_lib
from musae_common.errors import UserError
from musae_jax import checkpointing

# Small real songs of five genres; the fixture takes train and validation songs from them.
CANDIDATES = ["freemidi/country/14391.mid", "freemidi/pop/11977.mid", "freemidi/pop/11804.mid",
              "freemidi/rap_hip_hop/12963.mid", "freemidi/rnb_soul/13253.mid",
              "freemidi/rock/7454.mid", "freemidi/country/13534.mid", "freemidi/pop/11111.mid",
              "freemidi/rap_hip_hop/12839.mid", "freemidi/rock/3214.mid",
              "freemidi/rnb_soul/13366.mid", "freemidi/country/13953.mid"]
VALIDATION_FRACTION = 0.5
BATCH = 16


def _pick_songs(shared: pathlib.Path) -> list[str]:
  """4 train and 2 validation songs, whatever the split function decides for each."""
  by_split = collections.defaultdict(list)
  for path in CANDIDATES:
    md5 = hashlib.md5((shared / "midi" / path).read_bytes()).hexdigest()
    by_split[split_lib.song_split(md5, VALIDATION_FRACTION)].append(path)
  train, validation = by_split[split_lib.TRAIN][:4], by_split[split_lib.VALIDATION][:2]
  assert len(train) == 4 and len(validation) == 2, dict(by_split)
  return train + validation


@pytest.fixture(scope="module")
def data_dir(shared_data, tmp_path_factory) -> str:
  folder = tmp_path_factory.mktemp("loader")
  songs = _pick_songs(shared_data)
  for path in songs:
    (folder / "midi" / path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_data / "midi" / path, folder / "midi" / path)
  labels = json.loads((shared_data / "genres.json").read_text())
  (folder / "genres.json").write_text(json.dumps({path: labels[path] for path in songs}))
  out = str(folder / "tfds")
  build.build_dataset(str(folder / "midi"), out, 2, genres_file=str(folder / "genres.json"),
                      workers=1, validation_fraction=VALIDATION_FRACTION)
  return out


def _split(data_dir: str, split: str) -> list[dict]:
  source = tfds.data_source("musae_windows/2bar", split=split, data_dir=data_dir)
  return [source[i] for i in range(len(source))]


def _rows(batches) -> list[bytes]:
  return [row.tobytes() for batch in batches for row in batch["tokens"]]


def test_dataset_queries(data_dir):
  assert loader.dataset_name(2) == "musae_windows/2bar"
  assert loader.dataset_name(16) == "musae_windows/16bar"
  assert loader.dataset_exists(data_dir, 2) and not loader.dataset_exists(data_dir, 16)
  vocabulary = loader.genre_vocabulary(data_dir, 2)
  assert len(vocabulary) >= 3 and set(vocabulary) <= {"country", "pop", "rap_hip_hop",
                                                      "rnb_soul", "rock"}
  stats = loader.build_stats(data_dir, 2)
  for split in ("train", "validation"):
    assert loader.num_examples(data_dir, 2, split) == stats["examples_per_split"][split] > 0
  with pytest.raises(FileNotFoundError, match="python -m data_pipeline.build"):
    loader.genre_vocabulary(data_dir, 16)


def test_train_batches_cover_an_epoch_then_reshuffle(data_dir):
  train = _split(data_dir, "train")
  iterator = loader.train_iterator(data_dir, 2, BATCH, seed=3, transpose=(0, 0))
  # Batches run on across epochs: rows [0, N) are epoch 0, rows [N, 2N) epoch 1.
  batches = [next(iterator) for _ in range(2 * len(train) // BATCH)]
  batch = batches[0]
  assert batch["tokens"].shape == (BATCH, 32, 4) and batch["tokens"].dtype == np.uint8
  assert batch["genres"].shape == (BATCH, len(loader.genre_vocabulary(data_dir, 2)))
  assert batch["genres"].dtype == np.float32
  rows = _rows(batches)
  everything = collections.Counter(example["tokens"].tobytes() for example in train)
  assert collections.Counter(rows[:len(train)]) == everything  # Every example once per epoch.
  second = rows[len(train):2 * len(train)]
  assert not collections.Counter(second) - everything
  assert second != rows[:len(second)]  # A new order every epoch.
  # Genres travel with their tokens.
  genres_of = {example["tokens"].tobytes(): example["genres"] for example in train}
  for row, genres in zip(batch["tokens"], batch["genres"]):
    np.testing.assert_array_equal(genres, genres_of[row.tobytes()])


def test_same_seed_same_batches_and_resume_from_state(data_dir):
  first = loader.train_iterator(data_dir, 2, BATCH, seed=7)
  for _ in range(5):
    next(first)
  state = first.get_state()
  json.dumps(state)  # The trainer stores it in its checkpoint.
  expected = [next(first) for _ in range(3)]
  resumed = loader.train_iterator(data_dir, 2, BATCH, seed=7)
  resumed.set_state(state)
  again = loader.train_iterator(data_dir, 2, BATCH, seed=7)
  for _ in range(5):
    next(again)
  for want, got, fresh in zip(expected, (next(resumed) for _ in range(3)),
                              (next(again) for _ in range(3))):
    for name in ("tokens", "genres"):
      np.testing.assert_array_equal(got[name], want[name])
      np.testing.assert_array_equal(fresh[name], want[name])
  other = next(loader.train_iterator(data_dir, 2, BATCH, seed=8))
  assert other["tokens"].tobytes() != next(loader.train_iterator(data_dir, 2, BATCH, seed=7))[
      "tokens"].tobytes()


def test_augmentation_shifts_pitched_tracks_per_example_and_epoch(data_dir):
  num_train = loader.num_examples(data_dir, 2, "train")
  batches = 2 * (num_train // BATCH)  # Two epochs.
  plain = loader.train_iterator(data_dir, 2, BATCH, seed=5, transpose=(0, 0))
  shifted = loader.train_iterator(data_dir, 2, BATCH, seed=5, transpose=(-5, 6))
  shifts_of = collections.defaultdict(set)
  all_shifts = []
  for _ in range(batches):
    a, b = next(plain)["tokens"], next(shifted)["tokens"]
    np.testing.assert_array_equal(b[:, :, 0], a[:, :, 0])  # Drums never move.
    is_note = a[:, :, 1:] < tokens_lib.NUM_PITCHES
    np.testing.assert_array_equal(b[:, :, 1:] < tokens_lib.NUM_PITCHES, is_note)
    np.testing.assert_array_equal(b[:, :, 1:][~is_note], a[:, :, 1:][~is_note])
    delta = b[:, :, 1:].astype(int) - a[:, :, 1:].astype(int)
    for row in range(BATCH):
      row_shifts = set(delta[row][is_note[row]].tolist())
      assert len(row_shifts) <= 1  # One shift per example, the same for all its notes.
      if row_shifts:
        shift = row_shifts.pop()
        assert -5 <= shift <= 6
        all_shifts.append(shift)
        shifts_of[a[row].tobytes()].add(shift)
  assert set(all_shifts) == set(range(-5, 7))
  # The same example meets different shifts in different epochs.
  assert sum(len(s) > 1 for s in shifts_of.values()) > len(shifts_of) // 2


def test_song_fraction_trains_on_a_stable_nested_subset_of_songs(data_dir):
  train = _split(data_dir, "train")
  songs = sorted({example["song"].decode() for example in train}, key=loader.song_share)
  assert len(songs) == 4
  # A fraction between the second and third smallest shares keeps exactly two songs.
  fraction = (loader.song_share(songs[1]) + loader.song_share(songs[2])) / 2
  kept = collections.Counter(example["tokens"].tobytes() for example in train
                             if example["song"].decode() in songs[:2])
  iterator = loader.train_iterator(data_dir, 2, 4, seed=1, transpose=(0, 0),
                                   song_fraction=fraction)
  epoch = sum(kept.values())
  rows = _rows(next(iterator) for _ in range(epoch // 4))
  # One epoch: the kept songs' rows, each at most as often as in the split.
  assert len(rows) > epoch - 4 and not collections.Counter(rows) - kept
  # A smaller fraction's songs are among a larger one's; the whole split at 1.
  records = loader._records(data_dir, 2, "train")
  small = set(loader.song_subset_rows(records, loader.song_share(songs[0]) + 1e-9).tolist())
  large = set(loader.song_subset_rows(records, fraction).tolist())
  assert small and small < large and len(large) == epoch
  assert len(loader.song_subset_rows(records, 1.0)) == len(train)
  with pytest.raises(UserError, match="has 0 examples at song_fraction="):
    loader.train_iterator(data_dir, 2, 4, seed=1, song_fraction=loader.song_share(songs[0]) / 2)
  with pytest.raises(UserError, match=r"must be in \(0, 1\]"):
    loader.train_iterator(data_dir, 2, 4, seed=1, song_fraction=0.0)
  # A run is resumed on the songs it started on, or refused with the field named.
  config = default.get_config()
  saved = checkpointing.config_to_dict(config)
  del saved["data"]["train_song_fraction"]  # Saved before the field existed: every song.
  checkpointing.check_compatible(saved, config, "run")
  config.data.train_song_fraction = 0.5
  with pytest.raises(UserError, match=r"data.train_song_fraction: checkpoint 1.0 vs config 0.5"):
    checkpointing.check_compatible(saved, config, "run")


def test_processes_read_disjoint_slices_of_the_same_global_batches(data_dir):
  num_train = loader.num_examples(data_dir, 2, "train")
  num_batches = num_train // 8
  single = loader.train_iterator(data_dir, 2, 8, seed=0)
  parts = [loader.train_iterator(data_dir, 2, 4, seed=0, process_index=index, process_count=2)
           for index in range(2)]
  seen = collections.Counter()
  for _ in range(num_batches):
    whole = next(single)
    halves = [next(part) for part in parts]
    # Same rows and the same transpositions as one process reading the global batch.
    for key in ("tokens", "genres"):
      np.testing.assert_array_equal(whole[key], np.concatenate([h[key] for h in halves]))
    seen.update(_rows(halves))
  all_rows = collections.Counter(example["tokens"].tobytes()
                                 for example in _split(data_dir, "train"))
  untransposed = loader.train_iterator(data_dir, 2, 4, seed=0, transpose=(0, 0),
                                       process_index=1, process_count=2)
  assert not collections.Counter(_rows(next(untransposed) for _ in range(num_batches))) - all_rows
  assert sum(seen.values()) == num_batches * 8
  with pytest.raises(UserError, match="fewer than one global batch"):
    loader.train_iterator(data_dir, 2, num_train + 1, seed=0)


def test_grain_workers_give_the_same_batches(data_dir):
  in_process = loader.train_iterator(data_dir, 2, BATCH, seed=11)
  with_workers = loader.train_iterator(data_dir, 2, BATCH, seed=11, worker_count=1)
  for _ in range(3):
    a, b = next(in_process), next(with_workers)
    np.testing.assert_array_equal(a["tokens"], b["tokens"])
    np.testing.assert_array_equal(a["genres"], b["genres"])


def test_eval_batches_cover_the_split_once_with_padding(data_dir):
  validation = _split(data_dir, "validation")
  batches = list(loader.eval_batches(data_dir, 2, BATCH))
  assert len(batches) == -(-len(validation) // BATCH)
  for batch in batches:
    assert batch["tokens"].shape == (BATCH, 32, 4) and batch["mask"].dtype == np.float32
  rows = [(row.tobytes(), tuple(genres)) for batch in batches
          for row, genres, keep in zip(batch["tokens"], batch["genres"], batch["mask"]) if keep]
  assert collections.Counter(rows) == collections.Counter(
      (example["tokens"].tobytes(), tuple(example["genres"])) for example in validation)
  padding = batches[-1]["mask"] == 0
  assert padding.sum() == len(batches) * BATCH - len(validation)
  assert (batches[-1]["tokens"][padding] == tokens_lib.SILENT).all()
  again = list(loader.eval_batches(data_dir, 2, BATCH))
  assert all((a["tokens"] == b["tokens"]).all() for a, b in zip(batches, again))
  assert len(list(loader.eval_batches(data_dir, 2, BATCH, max_batches=1))) == 1


def test_eval_batches_per_process_are_disjoint_and_aligned(data_dir):
  validation = _split(data_dir, "validation")
  per_process = [list(loader.eval_batches(data_dir, 2, BATCH, process_index=i, process_count=3))
                 for i in range(3)]
  assert len({len(batches) for batches in per_process}) == 1  # Same number of batches each.
  rows = [row.tobytes() for batches in per_process for batch in batches
          for row, keep in zip(batch["tokens"], batch["mask"]) if keep]
  assert collections.Counter(rows) == collections.Counter(
      example["tokens"].tobytes() for example in validation)
