"""Reading MIDI files into note arrays, and writing token matrices back to MIDI.

`read_midi` parses with symusic (about a millisecond per song) after
`check_structure` has verified the chunk structure from the bytes: symusic
and pretty_midi both accept some broken files (symusic reads a cut-off
track's remains, a short time signature or an impossible key signature), so
truncation and corruption are detected here, each with a reason.
`read_midi_reference` reads the same content with pretty_midi; tests use it
to show that both readers give identical windows.

Both readers follow pretty_midi's rules for pairing note-on and note-off
events, so they agree note for note:
  * a note-off closes every open note of that pitch and channel that started
    before it (symusic alone would close only the oldest one);
  * a note whose note-off comes at the same tick as its note-on is dropped;
  * a note-on that is never closed is dropped.
They still differ in two rare ways, both kept on purpose: pretty_midi files a
note under the program active at its note-off (symusic, rightly, at its
note-on), and it ignores time signatures and tempos outside the first track
(symusic reads them wherever they are, so such a meter change is rejected).
"""

from __future__ import annotations

import dataclasses
import io
import re
import struct
from typing import Sequence

import numpy as np
import pretty_midi
import symusic

from data_pipeline import tokens as tokens_lib
from data_pipeline.rejections import RejectedSong

DEFAULT_TEMPO_QPM = 120.0  # The MIDI default when a file has no tempo event.
WRITE_TICKS_PER_QUARTER = 96  # 24 ticks per grid step in written files.


@dataclasses.dataclass(frozen=True)
class Instrument:
  """The notes of one MIDI track/channel/program, as tick arrays."""
  program: int
  is_drum: bool
  start_ticks: np.ndarray  # int64 [n], sorted by (start, pitch)
  end_ticks: np.ndarray  # int64 [n], > start_ticks
  pitches: np.ndarray  # int16 [n], 0..127


@dataclasses.dataclass(frozen=True)
class MidiContent:
  """What the token pipeline needs from a MIDI file."""
  ticks_per_quarter: int
  instruments: tuple[Instrument, ...]
  time_signatures: tuple[tuple[int, int, int], ...]  # (tick, numerator, denominator)
  tempo_qpm: float  # the first tempo

  @property
  def end_tick(self) -> int:
    """The tick at which the last note ends (0 without notes)."""
    ends = [int(i.end_ticks.max()) for i in self.instruments if len(i.end_ticks)]
    return max(ends, default=0)


def _meta_events(data: bytes, meta_type: int, begin: int, end: int):
  """(offset, payload) of the meta events of one type in data[begin:end].

  A byte scan, not an event parse (which costs tens of milliseconds per song
  in Python): a meta event is 0xFF, its type, a one-byte length here, and its
  0xFF follows a delta time, whose last byte is < 0x80. On the 2,254 corpus
  files this finds no false time- or key-signature event.
  """
  marker = bytes([0xFF, meta_type])
  position = data.find(marker, begin, end)
  while position >= 0:
    if data[position - 1] < 0x80 and position + 2 < end and data[position + 2] < 0x80:
      yield position, data[position + 3:min(position + 3 + data[position + 2], end)]
    position = data.find(marker, position + 1, end)


def _check_signatures(data: bytes, begin: int, end: int) -> None:
  """Rejects malformed time- and key-signature events.

  symusic reads past a short time signature and accepts any key signature,
  where pretty_midi fails on both.
  """
  for offset, payload in _meta_events(data, 0x58, begin, end):
    if len(payload) != 4:
      raise RejectedSong(
          "corrupt", f"corrupt: time-signature event at byte {offset} has "
          f"{len(payload)} data bytes instead of 4")
  for offset, payload in _meta_events(data, 0x59, begin, end):
    if len(payload) != 2:
      raise RejectedSong(
          "corrupt", f"corrupt: key-signature event at byte {offset} has "
          f"{len(payload)} data bytes instead of 2")
    sharps, mode = struct.unpack("bB", payload)
    if not -7 <= sharps <= 7 or mode > 1:
      raise RejectedSong(
          "corrupt", f"corrupt: invalid key signature ({sharps} sharps, mode {mode}) "
          f"at byte {offset}")


def check_structure(data: bytes) -> None:
  """Rejects files that are not MIDI, truncated, or malformed in their chunks.

  Checks the MThd header, that each declared track is an MTrk chunk that fits
  in the file and ends with an End-of-Track event, and the time- and
  key-signature meta events. Bytes after the last declared track are ignored,
  as every MIDI reader does (84 corpus files carry such padding or HTML).
  """
  if not data:
    raise RejectedSong("empty", "file is empty (0 bytes)")
  if data[:4] != b"MThd" or len(data) < 14:
    raise RejectedSong("not_midi", "not a MIDI file (no 'MThd' header)")
  header_length = struct.unpack(">I", data[4:8])[0]
  if header_length < 6 or 8 + header_length > len(data):
    raise RejectedSong("corrupt", f"corrupt: MThd header length {header_length}")
  _, num_tracks, division = struct.unpack(">HHH", data[8:14])
  position = 8 + header_length
  for track in range(1, num_tracks + 1):
    remaining = len(data) - position
    if remaining == 0:
      raise RejectedSong(
          "truncated", f"truncated: the header declares {num_tracks} tracks but "
          f"the file ends after {track - 1}")
    if remaining < 8:
      raise RejectedSong("truncated",
                         f"truncated: track {track} header cut short after {remaining} bytes")
    name, length = data[position:position + 4], struct.unpack(
        ">I", data[position + 4:position + 8])[0]
    if name != b"MTrk":
      raise RejectedSong("corrupt", f"corrupt: no 'MTrk' header at byte {position} "
                         f"(track {track})")
    if length > remaining - 8:
      raise RejectedSong(
          "truncated", f"truncated: track {track} declares {length} bytes but only "
          f"{remaining - 8} remain")
    if data[position + 8 + length - 3:position + 8 + length] != b"\xff\x2f\x00" or length < 3:
      raise RejectedSong("corrupt",
                         f"corrupt: track {track} does not end with an End-of-Track event")
    position += 8 + length
  if division & 0x8000:
    raise RejectedSong("unsupported", "SMPTE time division is not supported "
                       "(only ticks per quarter note)")
  if division == 0:
    raise RejectedSong("corrupt", "corrupt: 0 ticks per quarter note in the header")
  _check_signatures(data, 14, position)


def _parser_failure(error: Exception) -> RejectedSong:
  """Turns a parser exception into a one-line rejection.

  The chunk structure was checked before parsing, so what the parser still
  finds is a malformed event inside a track.
  """
  message = str(error).replace("MiniMidi: ", "").replace(": iostream error", "")
  message = " ".join(message.split()).rstrip("!.") or type(error).__name__
  value = re.search(r"control_value=(\d+)", message)
  if value:
    message = f"a controller value of {value.group(1)} is outside 0..127"
  return RejectedSong("corrupt", f"corrupt: {message}")


def _pretty_midi_pairing(start_ticks: np.ndarray, end_ticks: np.ndarray,
                         pitches: np.ndarray):
  """Re-pairs symusic's notes the way pretty_midi pairs note events.

  symusic closes the oldest open note of a pitch at each note-off ("first in,
  first out"); pretty_midi closes every open note of that pitch that started
  before the note-off. The note-offs are the same in both (symusic ignores
  only note-offs that close nothing, and then so does pretty_midi), so
  pretty_midi's notes are rebuilt from symusic's: a note ends at the first
  note-off of its pitch after its start. A zero-length note (its note-on came
  just before its note-off at the same tick, with no older note open) is
  dropped, as pretty_midi does. This assumes note-offs come before note-ons
  at the same tick, as sequencers write them. Returns (starts, ends, pitches).
  """
  keep = end_ticks > start_ticks
  start_ticks, end_ticks, pitches = start_ticks[keep], end_ticks[keep], pitches[keep]
  if not len(start_ticks):
    return start_ticks, end_ticks, pitches
  # One sorted key space for all pitches: pitch * span + tick.
  span = int(end_ticks.max()) + 1
  pitch_base = pitches.astype(np.int64) * span
  off_keys = np.sort(pitch_base + end_ticks)
  next_off = np.searchsorted(off_keys, pitch_base + start_ticks, side="right")
  # FIFO pairing guarantees a note-off of the same pitch after each start.
  ends = off_keys[next_off] - pitch_base
  return start_ticks, ends, pitches


def _instrument(program: int, is_drum: bool, start_ticks: np.ndarray,
                end_ticks: np.ndarray, pitches: np.ndarray) -> Instrument:
  """An Instrument with its notes sorted by (start, pitch)."""
  order = np.lexsort((pitches, start_ticks))
  return Instrument(int(program), bool(is_drum), start_ticks[order].astype(np.int64),
                    end_ticks[order].astype(np.int64), pitches[order].astype(np.int16))


def read_midi(data: bytes) -> MidiContent:
  """Parses MIDI bytes with symusic; raises RejectedSong for bad input."""
  check_structure(data)
  try:
    score = symusic.Score.from_midi(data)
  except Exception as error:  # symusic raises RuntimeError/ValueError with a message
    raise _parser_failure(error) from None
  instruments = []
  for track in score.tracks:
    notes = track.notes.numpy()
    if not len(notes["time"]):
      continue
    starts = notes["time"].astype(np.int64)
    ends = starts + notes["duration"].astype(np.int64)
    pitches = notes["pitch"].astype(np.int16)
    starts, ends, pitches = _pretty_midi_pairing(starts, ends, pitches)
    if len(starts):
      instruments.append(_instrument(track.program, track.is_drum, starts, ends, pitches))
  signatures = score.time_signatures.numpy()
  time_signatures = tuple(
      (int(t), int(n), int(d)) for t, n, d in zip(
          signatures["time"], signatures["numerator"], signatures["denominator"]))
  tempos = score.tempos.numpy()
  first_tempo = int(tempos["mspq"][np.argmin(tempos["time"])]) if len(tempos["time"]) else 0
  # Microseconds per quarter note; 0 would be an infinite tempo.
  tempo_qpm = 6e7 / first_tempo if first_tempo > 0 else DEFAULT_TEMPO_QPM
  return MidiContent(int(score.ticks_per_quarter), tuple(instruments), time_signatures,
                     tempo_qpm)


def read_midi_reference(data: bytes) -> MidiContent:
  """Parses MIDI bytes with pretty_midi, the slow reference reader.

  Note times come back from seconds to ticks through pretty_midi's own tick
  map, which is exact because it built those seconds from the same ticks.
  Raises whatever pretty_midi raises; no structure check.
  """
  midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
  instruments = []
  for instrument in midi.instruments:
    if not instrument.notes:
      continue
    starts = np.array([midi.time_to_tick(n.start) for n in instrument.notes], np.int64)
    ends = np.array([midi.time_to_tick(n.end) for n in instrument.notes], np.int64)
    pitches = np.array([n.pitch for n in instrument.notes], np.int16)
    instruments.append(_instrument(instrument.program, instrument.is_drum, starts, ends,
                                   pitches))
  time_signatures = tuple(
      (int(midi.time_to_tick(ts.time)), ts.numerator, ts.denominator)
      for ts in midi.time_signature_changes)
  _, tempi = midi.get_tempo_changes()
  tempo_qpm = float(tempi[0]) if len(tempi) else DEFAULT_TEMPO_QPM
  return MidiContent(int(midi.resolution), tuple(instruments), time_signatures, tempo_qpm)


def midi_bytes(tokens: np.ndarray,
               programs: Sequence[int] = (0, 33, 0, 48),
               tempo_qpm: float = DEFAULT_TEMPO_QPM,
               velocity: int = 100) -> bytes:
  """A playable multitrack MIDI file for a token matrix [steps, 4].

  One MIDI track per token column, named after tokens.TRACKS; drums play on the
  drum channel (their program is ignored by players). A note starts at each
  onset token and lasts through the HOLD tokens that follow it. The file ends
  with the last note: trailing silence is not written.
  """
  tokens = np.asarray(tokens)
  if tokens.ndim != 2 or tokens.shape[1] != tokens_lib.NUM_TRACKS:
    raise ValueError(f"tokens must have shape [steps, {tokens_lib.NUM_TRACKS}], "
                     f"got {tokens.shape}")
  if not 1 <= velocity <= 127:
    raise ValueError(f"velocity must be in 1..127, got {velocity}")
  if tempo_qpm <= 0:
    raise ValueError(f"tempo_qpm must be positive, got {tempo_qpm}")
  ticks_per_step = WRITE_TICKS_PER_QUARTER // tokens_lib.STEPS_PER_QUARTER
  score = symusic.Score(WRITE_TICKS_PER_QUARTER)
  score.tempos.append(symusic.Tempo(0, float(tempo_qpm)))
  score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
  for column, (name, program) in enumerate(zip(tokens_lib.TRACKS, programs)):
    is_drum = column == 0
    track = symusic.Track(name=name, program=0 if is_drum else int(program),
                          is_drum=is_drum)
    start_steps, end_steps, pitches = tokens_lib.notes_from_tokens(tokens[:, column])
    if len(pitches):
      count = len(pitches)
      track.notes.extend(
          symusic.Note.from_numpy(
              (start_steps * ticks_per_step).astype(np.int32),
              ((end_steps - start_steps) * ticks_per_step).astype(np.int32),
              pitches.astype(np.int8), np.full(count, velocity, np.int8)))
    score.tracks.append(track)
  return score.dumps_midi()


def write_midi(tokens: np.ndarray, path: str,
               programs: Sequence[int] = (0, 33, 0, 48),
               tempo_qpm: float = DEFAULT_TEMPO_QPM,
               velocity: int = 100) -> None:
  """Writes a token matrix [steps, 4] to a playable multitrack MIDI file."""
  with open(path, "wb") as f:
    f.write(midi_bytes(tokens, programs, tempo_qpm, velocity))
