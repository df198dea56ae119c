"""What a build saw, kept and rejected: counted while building, saved as build_stats.json.

Definitions:
  files seen      MIDI files (.mid, .midi, .kar) found under the MIDI folder.
  files parsed    seen minus those that could not be read as MIDI (PARSE_FAILURES).
  files kept      files that gave at least one example.
  windows kept    examples written (one per window and track combination).
  windows dropped windows cut from kept or rejected songs but not written, per reason.
"""

import collections
import dataclasses
from typing import Any

from data_pipeline import split as split_lib

# Rejection reasons meaning the file never became a parsed MIDI song.
PARSE_FAILURES = frozenset({"not_midi", "truncated", "corrupt", "unsupported", "unreadable",
                            "timeout", "crash", "error"})
STATS_FILE = "build_stats.json"
_SPLITS = (split_lib.TRAIN, split_lib.VALIDATION)


@dataclasses.dataclass
class BuildStats:
  """Counters of one build; `as_dict()` is the content of build_stats.json."""
  dataset: str
  bars: int
  genre_vocabulary: list[str]
  options: dict[str, Any]
  files_seen: int = 0
  files_rejected: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  files_per_split: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  windows_kept: int = 0
  windows_dropped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  examples_per_split: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  # split -> genre -> examples; songs without a genre of the vocabulary count as "unlabeled".
  examples_per_split_and_genre: dict[str, collections.Counter] = dataclasses.field(
      default_factory=lambda: collections.defaultdict(collections.Counter))
  worker_restarts: int = 0
  # Wall time from the first worker's start to the last record written (writer="tfds": to the
  # last song extracted; TFDS serializes and writes after that).
  seconds: float = 0.0
  extraction_cpu_seconds: float = 0.0  # Summed over the workers (files that finished).
  writer_cpu_seconds: float = 0.0  # The process that collects, serializes and writes.

  def add_rejection(self, reason: str, dropped: dict[str, int] | None = None,
                    cpu_seconds: float = 0.0) -> None:
    self.files_seen += 1
    self.extraction_cpu_seconds += cpu_seconds
    self.files_rejected[reason] += 1
    self.windows_dropped.update(dropped or {})

  def add_song(self, split: str, num_examples: int, dropped: dict[str, int],
               genres: list[str], cpu_seconds: float = 0.0) -> None:
    self.files_seen += 1
    self.extraction_cpu_seconds += cpu_seconds
    self.files_per_split[split] += 1
    self.windows_kept += num_examples
    self.windows_dropped.update(dropped)
    self.examples_per_split[split] += num_examples
    for genre in genres or ["unlabeled"]:
      self.examples_per_split_and_genre[split][genre] += num_examples

  @property
  def files_kept(self) -> int:
    return sum(self.files_per_split.values())

  @property
  def files_parsed(self) -> int:
    failed = sum(n for reason, n in self.files_rejected.items() if reason in PARSE_FAILURES)
    return self.files_seen - failed

  def as_dict(self) -> dict[str, Any]:
    cpu = self.extraction_cpu_seconds + self.writer_cpu_seconds
    per_genre = collections.Counter()
    for counts in self.examples_per_split_and_genre.values():
      per_genre.update(counts)
    return {
        "dataset": self.dataset,
        "bars": self.bars,
        "options": self.options,
        "files": {"seen": self.files_seen, "parsed": self.files_parsed,
                  "kept": self.files_kept, "rejected": sum(self.files_rejected.values())},
        "files_rejected": dict(sorted(self.files_rejected.items())),
        "files_per_split": {split: self.files_per_split[split] for split in _SPLITS},
        "windows": {"kept": self.windows_kept,
                    "dropped": dict(sorted(self.windows_dropped.items()))},
        "examples_per_split": {split: self.examples_per_split[split] for split in _SPLITS},
        "examples_per_genre": dict(sorted(per_genre.items())),
        "examples_per_split_and_genre": {
            split: dict(sorted(counts.items()))
            for split, counts in sorted(self.examples_per_split_and_genre.items())},
        "genre_vocabulary": list(self.genre_vocabulary),
        "seconds": round(self.seconds, 3),
        "files_per_second": round(self.files_seen / self.seconds, 1) if self.seconds else None,
        "cpu_seconds": {"extraction": round(self.extraction_cpu_seconds, 3),
                        "writer": round(self.writer_cpu_seconds, 3)},
        # The rate of one core given to the build alone, whatever else the machine runs.
        "files_per_cpu_second": round(self.files_seen / cpu, 1) if cpu else None,
        "worker_restarts": self.worker_restarts,
    }


def summary(stats: dict[str, Any]) -> str:
  """A few human-readable lines about a build (from its as_dict() form)."""
  files, windows = stats["files"], stats["windows"]
  lines = [
      f"{stats['dataset']}: {files['seen']} files seen, {files['parsed']} parsed, "
      f"{files['kept']} kept, {files['rejected']} rejected "
      f"({stats['seconds']:.1f} s, {stats['files_per_second']} files/s with "
      f"{stats['options'].get('workers')} workers, {stats['files_per_cpu_second']} files per "
      "CPU second)",
      "  rejected: " + format_counts(stats["files_rejected"]),
      f"  windows: {windows['kept']} kept; dropped: " + format_counts(windows["dropped"]),
      "  examples per split: " + format_counts(stats["examples_per_split"]),
      "  examples per genre: " + format_counts(stats["examples_per_genre"]),
  ]
  empty = [split for split, count in stats["examples_per_split"].items() if count == 0]
  if empty and files["kept"]:
    # E.g. too few songs (or artists) for the validation fraction: training then reports no
    # validation metrics, which is easy to miss in a long log.
    lines.append(f"  warning: no examples in the {' and '.join(empty)} split from "
                 f"{files['kept']} kept files (validation_fraction "
                 f"{stats['options'].get('validation_fraction')}); add songs or change it.")
  return "\n".join(lines)


def format_counts(counts: dict[str, int]) -> str:
  """"a 1, b 2" (or "none")."""
  return ", ".join(f"{key} {value}" for key, value in counts.items()) or "none"
