"""Checks on the MIDI files the tools write that hold whatever notes a model plays.

A (tiny, test-trained) model may leave a track silent. Its MIDI track is still written, but
pretty_midi and symusic list no instrument for a track without notes, so a check of their
instrument lists would test the model's output, not the file.
"""

import io

import mido

from data_pipeline.tokens import TRACKS

_DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0.


def assert_one_named_track_per_token_track(data: bytes) -> None:
  """One MIDI track per token track, named after it; the drums play on the drum channel, the
  other tracks on other channels, and the file has notes."""
  midi = mido.MidiFile(file=io.BytesIO(data))
  assert [track.name for track in midi.tracks] == list(TRACKS)
  notes = 0
  for track in midi.tracks:
    channels = {m.channel for m in track if m.type == "note_on"}
    notes += sum(m.type == "note_on" for m in track)
    if track.name == TRACKS[0]:
      assert channels <= {_DRUM_CHANNEL}, (track.name, channels)
    else:
      assert _DRUM_CHANNEL not in channels, (track.name, channels)
  assert notes > 0
