"""Builds the musae_windows TFDS dataset from a folder of MIDI files, in parallel, without TF.

  python -m data_pipeline.build --midi_dir=DIR [--genres=FILE] [--manifest=FILE] \
      --config=2bar[,16bar] --data_dir=OUT [--workers=N]

Read it back with tfds.data_source("musae_windows/2bar", data_dir=OUT) or data_pipeline.loader.
Every rejected file is logged as one line; at the end the statistics are printed and saved as
build_stats.json beside dataset_info.json. A dataset already built in OUT is reused unless
--overwrite is given; then the new one is built beside it and replaces it only once complete, so a
failed rebuild (bad input, no usable file, an interrupt) leaves the old dataset as it was.
"""

import json
import os
import shutil
import tempfile

from absl import app
from absl import flags
from absl import logging
import tensorflow_datasets as tfds

from data_pipeline.musae_windows import build_stats
from data_pipeline.musae_windows import builder as builder_lib
from musae_common import cli


def default_manifest(midi_dir: str) -> str | None:
  """<midi_dir>/../manifest.csv if it exists (the layout of the shared corpus)."""
  path = os.path.join(os.path.dirname(os.path.abspath(midi_dir)), "manifest.csv")
  return path if os.path.isfile(path) else None


def build_dataset(midi_dir: str, data_dir: str, bars: int, genres_file: str | None = None,
                  workers: int = 0, manifest: str | None = None, max_silent_bars: float = 1.0,
                  max_combinations: int = 8, validation_fraction: float = 0.2, *,
                  file_time_limit: float = 60.0, shard_bytes: int = 64 << 20,
                  writer: str = "direct", overwrite: bool = False) -> dict:
  """Builds musae_windows/<bars>bar into data_dir (unless it is there) and returns its stats.

  Args:
    midi_dir: folder searched recursively for MIDI files.
    data_dir: TFDS data_dir to write to.
    bars: 2 or 16.
    genres_file: genre labels (see data_pipeline.genres.load_labels); None: no genres.
    workers: extraction processes (0: one per available core).
    manifest: CSV with `path` and `artist` columns for an artist-disjoint split; None: use
      <midi_dir>/../manifest.csv when it exists, else split songs by content only.
    max_silent_bars, max_combinations, validation_fraction: see MusaeWindows.
    file_time_limit: seconds after which one file is rejected as "timeout".
    shard_bytes: record bytes per array_record shard.
    writer: "direct" (fast) or "tfds" (TFDS's generic writer, the reference).
    overwrite: rebuild a dataset that is already built: into a staging folder inside data_dir,
      which replaces the old dataset only when the build has succeeded.

  Returns:
    The build statistics (the content of build_stats.json).

  Raises:
    builder_lib.BuildError: bad folder, labels or manifest, or no file gave a window.
  """
  if not os.path.isdir(midi_dir):
    raise builder_lib.BuildError(f"{midi_dir}: not a folder")
  if manifest and not os.path.isfile(manifest):
    raise builder_lib.BuildError(f"{manifest}: manifest not found")
  if not 0.0 <= validation_fraction <= 1.0:
    raise builder_lib.BuildError(f"validation_fraction={validation_fraction}: must be in [0, 1]")
  manifest = manifest or default_manifest(midi_dir)
  if manifest:
    builder_lib.read_artists(manifest)  # A bad manifest stops the build before anything is done.

  def make_builder(into: str) -> builder_lib.MusaeWindows:  # Reads the genre labels: checks them.
    return builder_lib.MusaeWindows(
        config=builder_lib.config_name(bars), data_dir=into, midi_dir=midi_dir,
        genres_file=genres_file, manifest=manifest, workers=workers,
        max_silent_bars=max_silent_bars, max_combinations=max_combinations,
        validation_fraction=validation_fraction, file_time_limit=file_time_limit,
        shard_bytes=shard_bytes, writer=writer)

  builder = make_builder(data_dir)
  if overwrite and builder.is_prepared():
    return _rebuild_beside(make_builder, data_dir, bars)
  stats_path = os.path.join(builder.data_dir, build_stats.STATS_FILE)
  if builder.is_prepared():
    logging.info("%s is already built in %s; reusing it.", builder.info.full_name,
                 builder.data_dir)
    with open(stats_path, encoding="utf-8") as f:
      return json.load(f)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return builder.stats


def _rebuild_beside(make_builder, data_dir: str, bars: int) -> dict:
  """Builds into a staging folder in data_dir, then swaps it in for the dataset already there."""
  staging = tempfile.mkdtemp(prefix=".rebuild-", dir=data_dir)
  try:
    builder = make_builder(staging)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    target = builder_lib.dataset_dir(data_dir, bars)
    shutil.rmtree(target)
    os.replace(builder_lib.dataset_dir(staging, bars), target)
    return builder.stats
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def define_flags() -> None:
  """The command-line flags; defined only when run as a program (importers have their own)."""
  flags.DEFINE_string("midi_dir", None, "Folder of MIDI files (searched recursively).")
  flags.DEFINE_string("genres", None, "Genre labels: JSON {relative path: [tags]} or LMD/LPD "
                      "label lists (see data_pipeline.genres).")
  flags.DEFINE_string("manifest", None, "CSV with `path` and `artist` columns for an "
                      "artist-disjoint split (default: <midi_dir>/../manifest.csv if present).")
  flags.DEFINE_list("config", ["2bar"], "Dataset configs to build: 2bar, 16bar or both.")
  flags.DEFINE_string("data_dir", "data/tfds", "TFDS data_dir to write to.")
  flags.DEFINE_integer("workers", 0, "Extraction processes (0: one per core).")
  flags.DEFINE_float("max_silent_bars", 1.0, "Drop windows with a track silent for longer than "
                     "this many bars.")
  flags.DEFINE_integer("max_combinations", 8, "Most drums x bass x guitar track combinations "
                       "per song.")
  flags.DEFINE_float("validation_fraction", 0.2, "Share of songs in the validation split.")
  flags.DEFINE_float("file_time_limit", 60.0, "Seconds one file may take before it is rejected "
                     "as a timeout.")
  flags.DEFINE_bool("overwrite", False, "Rebuild a dataset that is already built.")


def main(argv: list[str]) -> None:
  args = flags.FLAGS
  if not args.midi_dir:
    raise app.UsageError("--midi_dir is required")
  cli.run_tool(argv, _build, verbosity=logging.get_verbosity())  # --verbosity as given.


def _build() -> None:
  """Builds every requested config; a UserError (bad folder, labels, manifest) stops it."""
  args = flags.FLAGS
  configs = {config.name: config.bars for config in builder_lib.MusaeWindows.BUILDER_CONFIGS}
  for name in args.config:
    if name not in configs:
      raise builder_lib.BuildError(f"--config={name}: must be one of {', '.join(configs)}")
  for bars in [configs[name] for name in args.config]:
    target = builder_lib.dataset_dir(args.data_dir, bars)
    stats = build_dataset(args.midi_dir, args.data_dir, bars, genres_file=args.genres,
                          workers=args.workers, manifest=args.manifest,
                          max_silent_bars=args.max_silent_bars,
                          max_combinations=args.max_combinations,
                          validation_fraction=args.validation_fraction,
                          file_time_limit=args.file_time_limit, overwrite=args.overwrite)
    print(build_stats.summary(stats))
    print(f"  statistics: {os.path.join(target, build_stats.STATS_FILE)}")


def console_main() -> None:
  """The musae-build console script."""
  cli.run_console(main, __name__, define_flags)


if __name__ == "__main__":
  console_main()
