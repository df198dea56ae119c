"""Reading MIDI files into note arrays, and writing token matrices back to MIDI.

`read_midi` parses with symusic (about a millisecond per song) after
`check_structure` has verified the chunk structure: symusic and pretty_midi
both accept some broken files (pretty_midi silently loads a file whose last
declared track is missing), so truncation and corruption are detected here
from the bytes, with a reason. `read_midi_reference` reads the same content
with pretty_midi; tests use it to show both readers give identical windows.

Both readers follow pretty_midi's rules for pairing note-on and note-off
events, so they agree note for note:
  * a note-off closes every open note of that pitch and channel that started
    before it (symusic would close only the oldest one);
  * a note whose note-off comes at the same tick as its note-on is dropped;
  * a note-on that is never closed is dropped.
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
from data_pipeline.tracks import RejectedSong

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


# Meta events whose malformation symusic tolerates (it reads past the event),
# while pretty_midi fails. A 0xFF status byte follows a delta time, whose last
# byte is < 0x80; the check never fires on the 2,254 corpus files.
_TIME_SIGNATURE = re.compile(rb"(?<=[\x00-\x7f])\xff\x58([\x00-\x7f])", re.DOTALL)
_KEY_SIGNATURE = re.compile(rb"(?<=[\x00-\x7f])\xff\x59([\x00-\x7f])(..)?", re.DOTALL)


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
  for match in _TIME_SIGNATURE.finditer(data, 14, position):
    if match.group(1) != b"\x04":
      raise RejectedSong(
          "corrupt", f"corrupt: time-signature event at byte {match.start()} has "
          f"{match.group(1)[0]} data bytes instead of 4")
  for match in _KEY_SIGNATURE.finditer(data, 14, position):
    payload = match.group(2)
    if match.group(1) != b"\x02" or payload is None:
      raise RejectedSong(
          "corrupt", f"corrupt: key-signature event at byte {match.start()} has "
          f"{match.group(1)[0]} data bytes instead of 2")
    sharps = struct.unpack("b", payload[:1])[0]
    if not -7 <= sharps <= 7 or payload[1] > 1:
      raise RejectedSong(
          "corrupt", f"corrupt: invalid key signature ({sharps} sharps, mode "
          f"{payload[1]}) at byte {match.start()}")


def _parser_failure(error: Exception) -> RejectedSong:
  """Turns a parser exception into a one-line rejection."""
  message = str(error).replace("MiniMidi: ", "").replace(": iostream error", "")
  value = re.search(r"control_value=(\d+)", message)
  if value:
    message = f"a controller value of {value.group(1)} is outside 0..127"
  elif re.search(r"\b(length|EOF|remaining)\b", message, re.IGNORECASE):
    return RejectedSong("truncated", f"truncated: {message.strip()}")
  return RejectedSong("corrupt", f"corrupt: {message.strip() or type(error).__name__}")


def _pretty_midi_pairing(start_ticks: np.ndarray, end_ticks: np.ndarray,
                         pitches: np.ndarray, channels: np.ndarray | None = None):
  """Re-pairs first-in-first-out note events the way pretty_midi does.

  symusic closes the oldest open note at each note-off. pretty_midi closes
  every open note of that pitch that started before the note-off, so a note
  ends at the first note-off after its start, and a note whose start tick
  equals that note-off's tick is dropped when no older note was open. The
  note-offs are the FIFO ends (symusic ignores exactly the note-offs that
  close nothing, and so does pretty_midi then), so pretty_midi's notes can be
  rebuilt per pitch from sorted starts and ends. Returns (starts, ends,
  pitches) with the dropped notes removed.
  """
  keep = np.ones(len(start_ticks), bool)
  new_ends = end_ticks.copy()
  order = np.lexsort((start_ticks, pitches))
  pitch_sorted = pitches[order]
  boundaries = np.flatnonzero(np.diff(pitch_sorted)) + 1
  for group in np.split(order, boundaries):
    starts = start_ticks[group]
    offs = np.sort(end_ticks[group])
    if len(group) == 1 or np.all(starts[1:] >= offs[:-1]):
      # No overlap between notes of this pitch: both pairings agree.
      keep[group] = offs > starts
      continue
    open_notes: list[int] = []  # positions in `group`
    on_index = 0
    for off in offs:
      while on_index < len(group) and starts[on_index] <= off:
        open_notes.append(on_index)
        on_index += 1
      older = [i for i in open_notes if starts[i] != off]
      for i in older:
        new_ends[group[i]] = off
      if older and len(older) < len(open_notes):
        open_notes = [i for i in open_notes if starts[i] == off]
      else:
        for i in open_notes:
          if starts[i] == off:
            keep[group[i]] = False
        open_notes = []
    for i in open_notes:  # never closed
      keep[group[i]] = False
  return start_ticks[keep], new_ends[keep], pitches[keep]


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
  tempo_qpm = (6e7 / float(tempos["mspq"][np.argmin(tempos["time"])])
               if len(tempos["time"]) else DEFAULT_TEMPO_QPM)
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
  onset token and lasts through the HOLD tokens that follow it.
  """
  tokens = np.asarray(tokens)
  if tokens.ndim != 2 or tokens.shape[1] != tokens_lib.NUM_TRACKS:
    raise ValueError(f"tokens must have shape [steps, {tokens_lib.NUM_TRACKS}], "
                     f"got {tokens.shape}")
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
