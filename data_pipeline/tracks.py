"""Track classes and MusAE's song filter.

MusAE keeps a song when every time-signature event is 4/4 (a file without one
counts as 4/4, the MIDI default) and it has a non-empty drum track (the drum
channel), a non-empty bass track (GM programs 32-39) and a non-empty
guitar/piano track (programs 0-31). Every other non-drum program (40-127) is
merged into the fourth track, "strings"; we also require it to be non-empty
(at least one instrument outside the three classes has notes), so every token
column can carry music.
"""

from typing import Sequence

from data_pipeline.midi_io import Instrument, MidiContent
from data_pipeline.rejections import RejectedSong

DRUMS, BASS, GUITAR, STRINGS = 0, 1, 2, 3  # Track classes, in tokens.TRACKS order.
BASS_PROGRAMS = range(32, 40)  # GM "Bass" family.
GUITAR_PROGRAMS = range(0, 32)  # GM piano, chromatic percussion, organ and guitar families.


def track_class(program: int, is_drum: bool) -> int:
  """The MusAE track class (DRUMS, BASS, GUITAR or STRINGS) of an instrument."""
  if is_drum:
    return DRUMS
  if program in BASS_PROGRAMS:
    return BASS
  if program in GUITAR_PROGRAMS:
    return GUITAR
  return STRINGS


def check_time_signatures(midi: MidiContent) -> None:
  """Rejects the song unless every time-signature event is 4/4."""
  for tick, numerator, denominator in midi.time_signatures:
    if (numerator, denominator) != (4, 4):
      # Every earlier event was 4/4, so bars before this one are 4 quarters.
      bar = tick // (4 * midi.ticks_per_quarter) + 1
      raise RejectedSong(
          "not_4_4", f"time signature {numerator}/{denominator} at bar {bar} "
          "(only 4/4 is supported)")


def instruments_by_class(
    instruments: Sequence[Instrument]) -> tuple[list[Instrument], ...]:
  """Non-empty instruments split into (drums, bass, guitar, strings) lists.

  Within a class, instruments are ordered by decreasing note count, so the
  first one is the class's main instrument; ties are broken by content
  (program, then notes), not by file order, which differs between readers.
  """
  classes: tuple[list[Instrument], ...] = ([], [], [], [])
  for instrument in instruments:
    if len(instrument.pitches):
      classes[track_class(instrument.program, instrument.is_drum)].append(instrument)
  for members in classes:
    members.sort(key=lambda i: (-len(i.pitches), i.program))
    ranks = [(-len(i.pitches), i.program) for i in members]
    if len(set(ranks)) < len(ranks):  # rare: compare the notes themselves
      members.sort(key=lambda i: (-len(i.pitches), i.program, i.start_ticks.tolist(),
                                  i.end_ticks.tolist(), i.pitches.tolist()))
  return classes


def check_tracks(classes: tuple[list[Instrument], ...]) -> None:
  """Rejects the song unless each of the four track classes has notes."""
  missing = [
      ("no_drums", "no drum track with notes (drum channel)"),
      ("no_bass", "no bass track with notes (programs 32-39)"),
      ("no_guitar", "no guitar/piano track with notes (programs 0-31)"),
      ("no_strings", "no other instrument with notes (programs 40-127), so the "
       "strings track would be empty"),
  ]
  for members, (reason, detail) in zip(classes, missing):
    if not members:
      raise RejectedSong(reason, detail)
