"""Throughput of the data pipeline: dataset build (MIDI -> stored windows) and the training loader.

  python -m data_pipeline.benchmark --midi_dir=DIR --workers=1,2 [--config=2bar] [--writer=direct]
  python -m data_pipeline.benchmark --loader --midi_dir=DIR [--batch_size=256] [--loader_workers=0]

Build: for each worker count, builds the dataset from scratch into a temporary data_dir and
prints files/s end to end (builder start to finished shards and metadata) and per worker, and
files per CPU second (worker and writer CPU time: the per-core rate on a machine that is also
busy with other work), plus the extraction-only rate of one process for reference.

Loader: builds once (or uses --data_dir if the dataset is there) and prints the examples/s of
train_iterator with augmentation, the rate the training step is compared against.
"""

import os
import tempfile
import time

from absl import app
from absl import flags

from data_pipeline import build
from data_pipeline import genres as genres_lib
from data_pipeline import loader
from data_pipeline import song as song_lib
from data_pipeline.musae_windows import builder as builder_lib

_MIDI_DIR = flags.DEFINE_string("midi_dir", None, "Folder of MIDI files.")
_GENRES = flags.DEFINE_string("genres", None, "Genre labels file (optional).")
_CONFIG = flags.DEFINE_enum("config", "2bar", ["2bar", "16bar"], "Dataset config.")
_WORKERS = flags.DEFINE_list("workers", ["1", "2"], "Worker counts to time the build with.")
_WRITER = flags.DEFINE_enum("writer", "direct", list(builder_lib.WRITERS), "Record writer.")
_EXTRACTION_FILES = flags.DEFINE_integer("extraction_files", 400, "Files timed for the "
                                         "extraction-only rate (0: skip).")
_LOADER = flags.DEFINE_bool("loader", False, "Time the training loader instead of the build.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Loader: an existing TFDS data_dir to read "
                                "(built there first if missing; default: a temporary folder).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Loader: rows per batch.")
_BATCHES = flags.DEFINE_integer("batches", 200, "Loader: batches timed (after 5 warm-up ones).")
_LOADER_WORKERS = flags.DEFINE_integer("loader_workers", 0, "Loader: grain worker processes.")


def _bars() -> int:
  return int(_CONFIG.value.removesuffix("bar"))


def time_extraction(midi_dir: str, bars: int, max_files: int) -> tuple[int, float, float]:
  """(files, wall s, CPU s) of extract_windows alone on up to max_files files, in this process.

  CPU seconds give the rate of one otherwise idle core even on a busy machine.
  """
  paths = genres_lib.list_midi_files(midi_dir)
  step = max(1, len(paths) // max_files)
  sample = [os.path.join(midi_dir, p) for p in paths[::step][:max_files]]
  start, start_cpu = time.perf_counter(), time.process_time()
  for path in sample:
    try:
      song_lib.extract_windows(path, bars)
    except song_lib.RejectedSong:
      pass
  return len(sample), time.perf_counter() - start, time.process_time() - start_cpu


def time_build(midi_dir: str, bars: int, workers: int) -> dict:
  with tempfile.TemporaryDirectory(prefix="musae_benchmark_") as data_dir:
    start = time.perf_counter()
    stats = build.build_dataset(midi_dir, data_dir, bars, genres_file=_GENRES.value,
                                workers=workers, writer=_WRITER.value)
    seconds = time.perf_counter() - start
  files = stats["files"]["seen"]
  return {"workers": workers, "files": files, "examples": stats["windows"]["kept"],
          "seconds": seconds, "files_per_s": files / seconds,
          "files_per_s_per_worker": files / seconds / workers,
          "examples_per_s": stats["windows"]["kept"] / seconds,
          "files_per_cpu_s": stats["files_per_cpu_second"],
          "extraction_cpu_ms_per_file": 1000 * stats["cpu_seconds"]["extraction"] / files,
          "writer_cpu_ms_per_file": 1000 * stats["cpu_seconds"]["writer"] / files}


def time_loader(data_dir: str, bars: int) -> dict:
  iterator = loader.train_iterator(data_dir, bars, _BATCH_SIZE.value, seed=0,
                                   worker_count=_LOADER_WORKERS.value)
  for _ in range(5):
    next(iterator)
  start = time.perf_counter()
  for _ in range(_BATCHES.value):
    batch = next(iterator)
  seconds = time.perf_counter() - start
  examples = _BATCHES.value * len(batch["tokens"])
  return {"batch_size": _BATCH_SIZE.value, "examples": examples, "seconds": seconds,
          "examples_per_s": examples / seconds, "batches_per_s": _BATCHES.value / seconds}


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _MIDI_DIR.value and not (_LOADER.value and _DATA_DIR.value):
    raise app.UsageError("--midi_dir is required")
  bars = _bars()
  if _LOADER.value:
    with tempfile.TemporaryDirectory(prefix="musae_benchmark_") as scratch:
      data_dir = _DATA_DIR.value or scratch
      if not loader.dataset_exists(data_dir, bars):
        build.build_dataset(_MIDI_DIR.value, data_dir, bars, genres_file=_GENRES.value)
      result = time_loader(data_dir, bars)
    print(f"loader musae_windows/{bars}bar: {result['examples_per_s']:.0f} examples/s "
          f"({result['batches_per_s']:.1f} batches of {result['batch_size']}/s, "
          f"{_LOADER_WORKERS.value} grain workers, transposition on)")
    return
  if _EXTRACTION_FILES.value:
    files, seconds, cpu = time_extraction(_MIDI_DIR.value, bars, _EXTRACTION_FILES.value)
    print(f"extraction only (extract_windows, 1 process): {files / seconds:.0f} files/s wall, "
          f"{files / cpu:.0f} files per CPU second ({files} files)")
  for workers in [int(w) for w in _WORKERS.value]:
    r = time_build(_MIDI_DIR.value, bars, workers)
    print(f"build musae_windows/{bars}bar, {workers} workers, writer={_WRITER.value}: "
          f"{r['files_per_s']:.0f} files/s ({r['files_per_s_per_worker']:.0f} per worker), "
          f"{r['examples_per_s']:.0f} examples/s; {r['files']} files, {r['examples']} examples "
          f"in {r['seconds']:.1f} s")
    print(f"  CPU: {r['files_per_cpu_s']:.0f} files per CPU second (extraction "
          f"{r['extraction_cpu_ms_per_file']:.2f} ms + writer {r['writer_cpu_ms_per_file']:.2f} ms "
          "per file)")


if __name__ == "__main__":
  app.run(main)
