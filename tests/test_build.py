"""The musae_windows build on real files: counts, content, bad input, writers, shards and the CLI.

One module-scoped build of a small corpus (10 good songs of 5 genres, the 26 deliberately bad
files and a file that never finishes reading) is checked against a direct count made here with
extract_windows, song_split and the genre labels.
"""

import collections
import csv
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipeline import build
from data_pipeline import genres as genres_lib
from data_pipeline import loader
from data_pipeline import song
from data_pipeline import split as split_lib
from data_pipeline.musae_windows import build_stats
from data_pipeline.musae_windows import builder as builder_lib
from data_pipeline.musae_windows import timed_pool

REPO = pathlib.Path(__file__).resolve().parents[1]
GOOD = ["freemidi/country/13534.mid", "freemidi/country/14391.mid", "freemidi/pop/11111.mid",
        "freemidi/pop/11804.mid", "freemidi/pop/11977.mid", "freemidi/rap_hip_hop/12839.mid",
        "freemidi/rap_hip_hop/12963.mid", "freemidi/rnb_soul/13253.mid",
        "freemidi/rock/3214.mid", "freemidi/rock/7454.mid"]
HANGING = "bad/never_ends.mid"  # A named pipe without a writer: reading it blocks forever.
TIME_LIMIT_S = 3.0
VALIDATION_FRACTION = 0.5  # Ten artists: both splits get songs (checked below).


def _make_corpus(shared: pathlib.Path, folder: pathlib.Path, with_bad: bool) -> dict[str, str]:
  """Copies the good songs (and the bad files) to folder/midi; returns the genres/manifest files."""
  midi = folder / "midi"
  for path in GOOD:
    (midi / path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared / "midi" / path, midi / path)
  if with_bad:
    shutil.copytree(shared / "bad", midi / "bad", ignore=shutil.ignore_patterns("*.csv"))
    os.mkfifo(midi / HANGING)
    (midi / "bad" / "notes.txt").write_text("not a MIDI name: ignored\n")
  labels = json.loads((shared / "genres.json").read_text())
  genres_file = folder / "genres.json"
  genres_file.write_text(json.dumps({path: labels[path] for path in GOOD}))
  with open(shared / "manifest.csv", newline="") as f:
    rows = [row for row in csv.DictReader(f) if row["path"] in GOOD]
  manifest = folder / "manifest.csv"
  with open(manifest, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["path", "artist"])
    writer.writeheader()
    writer.writerows({"path": row["path"], "artist": row["artist"]} for row in rows)
  return {"midi_dir": str(midi), "genres_file": str(genres_file), "manifest": str(manifest)}


def _direct_count(inputs: dict[str, str], bars: int) -> dict:
  """What the build must report, counted here one file at a time without the pipeline."""
  midi_dir = inputs["midi_dir"]
  labels = genres_lib.load_labels(midi_dir, inputs["genres_file"])
  vocabulary = genres_lib.build_vocabulary(labels)
  with open(inputs["manifest"], newline="") as f:
    artists = {row["path"]: row["artist"] for row in csv.DictReader(f)}
  rejected = collections.Counter()
  dropped = collections.Counter()
  per_split = collections.Counter()
  per_genre = collections.Counter()
  songs = {}
  seen = 0
  for root, _, names in os.walk(midi_dir):
    for name in names:
      if not name.endswith(".mid"):
        continue
      seen += 1
      path = os.path.relpath(os.path.join(root, name), midi_dir)
      if path == HANGING:
        rejected["timeout"] += 1
        continue
      data = pathlib.Path(root, name).read_bytes()
      try:
        windows = song.extract_windows(os.path.join(root, name), bars, data=data)
      except song.RejectedSong as exc:
        rejected[exc.reason] += 1
        continue
      dropped.update(windows.dropped)
      if not len(windows.tokens):
        rejected["no_windows"] += 1
        continue
      split = split_lib.song_split(hashlib.md5(data).hexdigest(), VALIDATION_FRACTION,
                                   artists.get(path))
      per_split[split] += len(windows.tokens)
      k_hot = genres_lib.k_hot(labels.get(path, []), vocabulary)
      for genre in [g for g, on in zip(vocabulary, k_hot) if on] or ["unlabeled"]:
        per_genre[genre] += len(windows.tokens)
      songs[path] = (split, k_hot, windows)
  return {"seen": seen, "rejected": rejected, "dropped": dropped, "per_split": per_split,
          "per_genre": per_genre, "songs": songs, "vocabulary": vocabulary}


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory) -> dict[str, str]:
  return _make_corpus(shared_data, tmp_path_factory.mktemp("corpus"), with_bad=True)


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory) -> dict:
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  stats = build.build_dataset(corpus["midi_dir"], data_dir, 2, genres_file=corpus["genres_file"],
                              workers=2, manifest=corpus["manifest"],
                              validation_fraction=VALIDATION_FRACTION,
                              file_time_limit=TIME_LIMIT_S, shard_bytes=20_000)
  return {"data_dir": data_dir, "stats": stats, "expected": _direct_count(corpus, 2)}


def _read_split(data_dir: str, bars: int, split: str) -> list[dict]:
  source = tfds.data_source(f"musae_windows/{bars}bar", split=split, data_dir=data_dir,
                            download=False)
  return [source[i] for i in range(len(source))]


def test_stats_match_a_direct_count(built):
  stats, expected = built["stats"], built["expected"]
  assert "warning" not in build_stats.summary(stats)  # Both splits have songs.
  kept_files = len(expected["songs"])
  assert stats["files"] == {"seen": expected["seen"],
                            "parsed": expected["seen"] - sum(
                                n for r, n in expected["rejected"].items()
                                if r in build_stats.PARSE_FAILURES),
                            "kept": kept_files, "rejected": expected["seen"] - kept_files}
  assert stats["files_rejected"] == dict(expected["rejected"])
  assert stats["windows"]["kept"] == sum(expected["per_split"].values())
  assert stats["windows"]["dropped"] == dict(expected["dropped"])
  assert stats["examples_per_split"] == {split: expected["per_split"][split]
                                         for split in ("train", "validation")}
  assert stats["examples_per_genre"] == dict(expected["per_genre"])
  assert stats["genre_vocabulary"] == expected["vocabulary"]
  # The corpus is meant to exercise both splits, several genres and many rejection reasons.
  assert all(stats["examples_per_split"].values())
  assert len(stats["genre_vocabulary"]) >= 5
  assert len(stats["files_rejected"]) >= 6
  assert stats["files_per_second"] > 0 and stats["seconds"] > 0
  assert stats["files_per_cpu_second"] > 0 and stats["cpu_seconds"]["extraction"] > 0
  on_disk = json.loads(pathlib.Path(builder_lib.dataset_dir(built["data_dir"], 2),
                                    build_stats.STATS_FILE).read_text())
  assert on_disk == json.loads(json.dumps(stats))


def test_a_hanging_file_times_out_and_no_good_file_is_lost(built):
  stats = built["stats"]
  assert stats["files_rejected"]["timeout"] == 1
  assert stats["worker_restarts"] >= 1
  stored = {example["song"].decode() for split in ("train", "validation")
            for example in _read_split(built["data_dir"], 2, split)}
  assert set(GOOD) <= stored


def test_every_stored_example_is_the_window_extracted_directly(built):
  expected = built["expected"]["songs"]
  stored = {}
  for split in ("train", "validation"):
    for example in _read_split(built["data_dir"], 2, split):
      key = (example["song"].decode(), int(example["start_bar"]), int(example["combination"]))
      assert key not in stored, f"{key} stored twice"
      stored[key] = (split, example)
  assert len(stored) == sum(len(w.tokens) for _, _, w in expected.values())
  for path, (split, k_hot, windows) in expected.items():
    for tokens, start, combination in zip(windows.tokens, windows.start_bars,
                                          windows.combinations):
      stored_split, example = stored[(path, int(start), int(combination))]
      assert stored_split == split
      np.testing.assert_array_equal(example["tokens"], tokens)
      np.testing.assert_array_equal(example["genres"], k_hot)
      assert example["tokens"].dtype == np.uint8 and example["tokens"].shape == (32, 4)


def test_dataset_info_shards_and_vocabulary(built):
  directory = pathlib.Path(builder_lib.dataset_dir(built["data_dir"], 2))
  builder = tfds.builder_from_directory(str(directory))
  assert builder.info.file_format.value == "array_record"
  splits = builder.info.splits
  assert {name: splits[name].num_examples for name in ("train", "validation")} == \
      built["stats"]["examples_per_split"]
  assert len(splits["train"].shard_lengths) > 1  # shard_bytes=20,000 forces several shards.
  assert len(list(directory.glob("musae_windows-train.array_record-*"))) == \
      len(splits["train"].shard_lengths)
  vocabulary = json.loads((directory / builder_lib.VOCABULARY_FILE).read_text())
  assert vocabulary == built["expected"]["vocabulary"]
  assert list(builder.info.metadata["genre_vocabulary"]) == vocabulary
  assert builder.info.features["genres"].shape == (len(vocabulary),)
  assert "tensorflow" not in sys.modules  # Building and reading never imported TensorFlow.


def test_direct_writer_matches_tfds_writer_for_any_worker_count(shared_data, tmp_path):
  corpus = _make_corpus(shared_data, tmp_path / "corpus", with_bad=False)
  datasets = {}
  for writer, workers in (("direct", 2), ("tfds", 1)):
    data_dir = str(tmp_path / writer)
    build.build_dataset(corpus["midi_dir"], data_dir, 2, genres_file=corpus["genres_file"],
                        workers=workers, manifest=corpus["manifest"], writer=writer,
                        validation_fraction=VALIDATION_FRACTION)
    datasets[writer] = {split: _read_split(data_dir, 2, split)
                        for split in ("train", "validation")}
  for split in ("train", "validation"):
    direct, reference = datasets["direct"][split], datasets["tfds"][split]
    assert len(direct) == len(reference) > 0
    for ours, theirs in zip(direct, reference):  # Same records in the same order.
      assert ours.keys() == theirs.keys()
      for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_a_split_without_songs_is_left_out(shared_data, tmp_path, monkeypatch):
  midi = tmp_path / "midi"
  midi.mkdir()
  shutil.copy(shared_data / "midi" / GOOD[0], midi / "song.mid")
  data_dir = str(tmp_path / "tfds")
  temporary = tmp_path / "tmp"
  temporary.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(temporary))
  stats = build.build_dataset(str(midi), data_dir, 2, workers=1, validation_fraction=0.0)
  # Nothing left behind in the temporary directory (multiprocessing's own pymp-* directory goes
  # at interpreter exit).
  assert not [p.name for p in temporary.iterdir() if not p.name.startswith("pymp-")]
  assert stats["examples_per_split"]["validation"] == 0 < stats["examples_per_split"]["train"]
  assert "warning: no examples in the validation split from 1 kept files" in build_stats.summary(
      stats)
  sources = tfds.data_source("musae_windows/2bar", data_dir=data_dir)
  assert list(sources) == ["train"]
  assert len(sources["train"]) == stats["examples_per_split"]["train"]
  assert loader.num_examples(data_dir, 2, "validation") == 0
  assert not list(loader.eval_batches(data_dir, 2, 8))
  assert loader.genre_vocabulary(data_dir, 2) == []
  assert sources["train"][0]["genres"].shape == (0,)


def test_timed_pool_survives_hangs_crashes_and_errors():
  # eval as the task function keeps the workers light (no test module to import) and lets each
  # task choose how to misbehave.
  tasks = [f"{i} * {i}" for i in range(12)]
  tasks[3] = "__import__('time').sleep(600)"
  tasks[5] = "__import__('os')._exit(7)"  # As a crash in a C extension: the process is gone.
  tasks[8] = "1 / 0"
  with timed_pool.TimedPool(eval, workers=2, time_limit=1.0, chunk_size=2) as pool:
    results = list(pool.imap(tasks))
  assert [task for task, _ in results] == tasks  # In order, none lost.
  failures = {tasks.index(task): result for task, result in results
              if isinstance(result, timed_pool.TaskFailure)}
  assert {i: failure.kind for i, failure in failures.items()} == {3: "timeout", 5: "crash",
                                                                  8: "error"}
  assert "exit code 7" in failures[5].detail and "ZeroDivisionError" in failures[8].detail
  assert [result for i, (_, result) in enumerate(results) if i not in failures] == [
      i * i for i in range(12) if i not in failures]
  assert pool.restarts == 2


def test_build_errors_are_one_clear_line(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(builder_lib.BuildError, match="no MIDI files"):
    build.build_dataset(str(tmp_path / "empty"), str(tmp_path / "out"), 2)
  only_bad = tmp_path / "bad"
  only_bad.mkdir()
  (only_bad / "a.mid").write_bytes(b"MThd")
  with pytest.raises(builder_lib.BuildError, match="none of its 1 MIDI files gave a window"):
    build.build_dataset(str(only_bad), str(tmp_path / "out"), 2, workers=1)
  assert not os.path.exists(builder_lib.dataset_dir(str(tmp_path / "out"), 2))
  with pytest.raises(builder_lib.BuildError, match="bars=4"):
    build.build_dataset(str(only_bad), str(tmp_path / "out"), 4)


def test_overwrite_replaces_a_dataset_only_once_the_new_build_succeeds(shared_data, tmp_path):
  corpus = _make_corpus(shared_data, tmp_path / "corpus", with_bad=False)
  data_dir = str(tmp_path / "tfds")
  kwargs = dict(genres_file=corpus["genres_file"], manifest=corpus["manifest"], workers=1,
                validation_fraction=VALIDATION_FRACTION)
  first = build.build_dataset(corpus["midi_dir"], data_dir, 2, **kwargs)
  target = builder_lib.dataset_dir(data_dir, 2)
  before = sorted(os.listdir(target))
  # Rebuilds that fail (a missing folder, a bad manifest, no usable file) leave it as it was.
  only_bad = tmp_path / "bad"
  only_bad.mkdir()
  (only_bad / "a.mid").write_bytes(b"MThd")
  with pytest.raises(builder_lib.BuildError, match="not a folder"):
    build.build_dataset(str(tmp_path / "missing"), data_dir, 2, overwrite=True)
  with pytest.raises(builder_lib.BuildError, match="manifest"):
    build.build_dataset(corpus["midi_dir"], data_dir, 2, manifest=str(only_bad / "a.mid"),
                        overwrite=True)
  with pytest.raises(builder_lib.BuildError, match="none of its 1 MIDI files gave a window"):
    build.build_dataset(str(only_bad), data_dir, 2, workers=1, overwrite=True)
  assert sorted(os.listdir(target)) == before
  assert not [name for name in os.listdir(data_dir) if name.startswith(".")]  # No staging left.
  source = tfds.data_source("musae_windows/2bar", split="train", data_dir=data_dir)
  assert len(source) == first["examples_per_split"]["train"]
  # A rebuild that succeeds replaces it: here every song in the validation split.
  second = build.build_dataset(corpus["midi_dir"], data_dir, 2, **{
      **kwargs, "validation_fraction": 1.0}, overwrite=True)
  assert not [name for name in os.listdir(data_dir) if name.startswith(".")]
  assert second["examples_per_split"].get("train", 0) == 0
  stored = json.loads(pathlib.Path(target, build_stats.STATS_FILE).read_text())
  assert stored["examples_per_split"] == second["examples_per_split"]
  source = tfds.data_source("musae_windows/2bar", split="validation", data_dir=data_dir)
  assert len(source) == sum(first["examples_per_split"].values())


def _run_cli(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "data_pipeline.build", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300, check=False)


def test_cli_builds_both_configs_and_reuses_them(shared_data, tmp_path):
  corpus = _make_corpus(shared_data, tmp_path / "corpus", with_bad=False)
  data_dir = str(tmp_path / "tfds")
  args = [f"--midi_dir={corpus['midi_dir']}", f"--genres={corpus['genres_file']}",
          f"--manifest={corpus['manifest']}", "--config=2bar,16bar", f"--data_dir={data_dir}",
          "--workers=2"]
  result = _run_cli(*args)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "musae_windows/2bar: 10 files seen" in result.stdout
  assert "musae_windows/16bar: 10 files seen" in result.stdout
  for bars in (2, 16):
    stats = json.loads(pathlib.Path(builder_lib.dataset_dir(data_dir, bars),
                                    build_stats.STATS_FILE).read_text())
    source = tfds.data_source(f"musae_windows/{bars}bar", split="train", data_dir=data_dir)
    assert len(source) == stats["examples_per_split"]["train"] > 0
    assert source[0]["tokens"].shape == (16 * bars, 4)
  again = _run_cli(*args)
  assert again.returncode == 0 and "already built" in again.stderr


def test_cli_reports_bad_input_without_a_traceback(tmp_path):
  result = _run_cli(f"--midi_dir={tmp_path / 'missing'}", f"--data_dir={tmp_path / 'out'}")
  assert result.returncode == 2  # USER_ERROR_EXIT_CODE, as every tool
  assert result.stderr.strip() == f"error: {tmp_path / 'missing'}: not a folder"
  result = _run_cli(f"--midi_dir={tmp_path}", "--config=4bar")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "--config=4bar: must be one of 2bar, 16bar" in result.stderr
