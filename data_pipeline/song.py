"""One MIDI file in, its training windows (or one clear rejection) out.

The steps, each in its own module: midi_io reads and checks the file, tracks
applies MusAE's song filter and classes the instruments, tokens turns each
track into 130-state monophonic tokens on the 16-steps-per-bar grid, and
windows cuts, filters and de-duplicates the windows of every drums x bass x
guitar/piano combination.

Decisions on points the paper leaves open:
  * The strings track merges every non-drum instrument outside bass (32-39)
    and guitar/piano (0-31), lowest pitch first; it is the same for all
    combinations, and must have notes.
  * A song's length is the end of its last note (any instrument), rounded up
    to whole bars; windows start at every bar and end inside the song.
  * A song that passes the filter but keeps no window (all too silent or
    duplicate) gives an empty SongWindows, not a rejection; one shorter than a
    window is rejected as "too_short".
  * Songs over MAX_BARS bars (about 68 minutes at 120 qpm), including files
    with absurd tick values, are rejected as "too_long" before any grid is
    allocated.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipeline import midi_io
from data_pipeline import tokens as tokens_lib
from data_pipeline import tracks
from data_pipeline import windows as windows_lib
from data_pipeline.rejections import RejectedSong

__all__ = ["RejectedSong", "SongWindows", "extract_windows", "windows_from_midi", "song_tokens",
           "MAX_BARS"]

MAX_BARS = 2048  # Longest song accepted, in 4/4 bars (32,768 grid steps).


@dataclasses.dataclass
class SongWindows:
  """The kept windows of one song, all track combinations together."""
  path: str
  tokens: np.ndarray  # uint8 [N, steps, 4] kept windows, deduplicated
  start_bars: np.ndarray  # int32 [N] first bar of each window in the song
  combinations: np.ndarray  # int32 [N] which drums x bass x guitar combination
  num_combinations: int  # combinations used (at most max_combinations)
  dropped: dict[str, int]  # windows dropped per reason: "silence", "duplicate"
  programs: tuple[int, int, int, int]  # GM programs of the main combination (drums: 0)
  tempo_qpm: float  # first tempo of the file
  num_bars: int  # song length in bars


@dataclasses.dataclass
class _Tracks:
  """A song that passed the filter, as token columns over its whole grid."""
  num_bars: int
  columns: tuple[list[np.ndarray], ...]  # per class: uint8 [steps] per instrument
  combinations: list[tuple[int, int, int]]
  programs: tuple[list[int], ...]  # per class: GM program per instrument
  tempo_qpm: float

  def combination_programs(self, combination: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """GM programs of a combination's tracks (drums: 0; strings: its main instrument)."""
    _, bass, guitar = combination
    return (0, self.programs[1][bass], self.programs[2][guitar], self.programs[3][0])

  def matrix(self, combination: tuple[int, int, int]) -> np.ndarray:
    """uint8 [steps, 4] tokens of one combination."""
    drums, bass, guitar = combination
    return np.stack([self.columns[0][drums], self.columns[1][bass],
                     self.columns[2][guitar], self.columns[3][0]], axis=1)


def _read(path: str, data: bytes | None) -> bytes:
  if data is not None:
    return data
  try:
    with open(path, "rb") as f:
      return f.read()
  except OSError as error:
    raise RejectedSong("unreadable", f"cannot read the file ({error.strerror})") from None


def _tokenise(midi: midi_io.MidiContent, max_combinations: int) -> _Tracks:
  """Filters and tokenises a song; raises RejectedSong."""
  if not midi.instruments:
    raise RejectedSong("empty", "the file has no notes")
  tpq = midi.ticks_per_quarter
  # The end of the last note on the grid (tokens.note_steps for every note,
  # without computing them all: rounding is monotonic).
  last_start = max(int(i.start_ticks.max()) for i in midi.instruments)
  last_step = max(int(tokens_lib.ticks_to_steps(midi.end_tick, tpq)),
                  int(tokens_lib.ticks_to_steps(last_start, tpq)) + 1)
  num_bars = -(-last_step // tokens_lib.STEPS_PER_BAR)
  if num_bars > MAX_BARS:
    raise RejectedSong(
        "too_long", f"too long: {num_bars} bars at {tpq} ticks per quarter "
        f"(the limit is {MAX_BARS})")
  tracks.check_time_signatures(midi)
  classes = tracks.instruments_by_class(midi.instruments)
  tracks.check_tracks(classes)
  combinations = windows_lib.track_combinations([len(c) for c in classes[:3]],
                                                max_combinations)
  num_steps = num_bars * tokens_lib.STEPS_PER_BAR
  used = [max(c[k] for c in combinations) + 1 for k in range(3)]

  def column(instruments) -> np.ndarray:
    starts = np.concatenate([i.start_ticks for i in instruments])
    ends = np.concatenate([i.end_ticks for i in instruments])
    pitches = np.concatenate([i.pitches for i in instruments])
    start_steps, end_steps = tokens_lib.note_steps(starts, ends, tpq)
    return tokens_lib.monophonic_tokens(start_steps, end_steps, pitches, num_steps)

  columns = tuple([column([i]) for i in members[:count]]
                  for members, count in zip(classes[:3], used))
  columns += ([column(classes[3])],)
  programs = tuple([i.program for i in members] for members in classes)
  return _Tracks(num_bars, columns, combinations, programs, midi.tempo_qpm)


def extract_windows(path: str, bars: int, *, max_silent_bars: float | None = 1.0,
                    max_combinations: int = 8, data: bytes | None = None) -> SongWindows:
  """The deduplicated `bars`-bar windows of every track combination of a song.

  Args:
    path: the file; also names it in rejections and in the result.
    bars: window length in bars (2 or 16 in the paper).
    max_silent_bars: a window is dropped when one of its tracks is silent for
      longer than this many bars in a row (None or inf: never).
    max_combinations: at most this many drums x bass x guitar combinations.
    data: the file's bytes, when already read.

  Raises RejectedSong with a reason; never anything else for bad input
  (ValueError for bad arguments).
  """
  if bars < 1:
    raise ValueError(f"bars must be >= 1, got {bars}")
  try:
    midi = midi_io.read_midi(_read(path, data))
  except RejectedSong as rejection:
    rejection.path = path
    raise
  return windows_from_midi(midi, path, bars, max_silent_bars=max_silent_bars,
                           max_combinations=max_combinations)


def windows_from_midi(midi: midi_io.MidiContent, path: str, bars: int, *,
                      max_silent_bars: float | None = 1.0,
                      max_combinations: int = 8) -> SongWindows:
  """extract_windows for a file already read (by either midi_io reader)."""
  try:
    song = _tokenise(midi, max_combinations)
    if song.num_bars < bars:
      raise RejectedSong("too_short",
                         f"too short: {song.num_bars} bars, a window needs {bars}")
  except RejectedSong as rejection:
    rejection.path = path
    raise
  start_bars = np.arange(windows_lib.num_windows(song.num_bars, bars))
  silence = {}  # per column identity: bool [num_windows]
  kept_windows, kept_starts, kept_combinations = [], [], []
  silent_count = 0
  for index, combination in enumerate(song.combinations):
    matrix = song.matrix(combination)
    too_silent = np.zeros(len(start_bars), bool)
    for track, row in enumerate(combination + (0,)):
      key = (track, row)
      if key not in silence:
        silence[key] = windows_lib.long_silence(matrix[:, track], bars, max_silent_bars)
      too_silent |= silence[key]
    silent_count += int(too_silent.sum())
    starts = start_bars[~too_silent]
    kept_windows.append(windows_lib.cut_windows(matrix, bars, starts))
    kept_starts.append(starts)
    kept_combinations.append(np.full(len(starts), index))
  all_windows = np.concatenate(kept_windows)
  first = windows_lib.first_occurrences(all_windows)
  return SongWindows(
      path=path,
      tokens=all_windows[first],
      start_bars=np.concatenate(kept_starts)[first].astype(np.int32),
      combinations=np.concatenate(kept_combinations)[first].astype(np.int32),
      num_combinations=len(song.combinations),
      dropped={"silence": silent_count, "duplicate": len(all_windows) - len(first)},
      programs=song.combination_programs(song.combinations[0]),
      tempo_qpm=song.tempo_qpm,
      num_bars=song.num_bars)


def song_tokens(path: str, *, data: bytes | None = None,
                max_combinations: int = 8) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
  """Whole-song token matrices, one per track combination, for inference.

  Returns (programs, uint8 [num_steps, 4]) pairs, best combination first; each
  matrix is cut after its last bar with a sounding step, so writing it with
  midi_io.write_midi and reading the file back gives the same matrix.
  Raises RejectedSong like extract_windows (a song shorter than a window is
  fine here).
  """
  try:
    song = _tokenise(midi_io.read_midi(_read(path, data)), max_combinations)
  except RejectedSong as rejection:
    rejection.path = path
    raise
  result = []
  for combination in song.combinations:
    matrix = song.matrix(combination)
    sounding_steps = np.flatnonzero((matrix != tokens_lib.SILENT).any(axis=1))
    num_bars = sounding_steps[-1] // tokens_lib.STEPS_PER_BAR + 1
    result.append((song.combination_programs(combination),
                   matrix[:num_bars * tokens_lib.STEPS_PER_BAR]))
  return result
