"""The musae_windows features and a fast writer of their serialized tf.train.Example records.

TFDS serializes each example through generic Python code (feature checks, one proto message per
example): about 40k examples/s on one core, several times the cost of extracting the windows.
Every record of a song shares its song and genre fields and differs only in the token bytes, the
start bar and the track combination, so `SongRecordEncoder` writes the protobuf wire format
directly from per-song templates. The records parse to exactly what TFDS's own serializer
produces (tests/test_build.py compares both through TFDS's parser).

Wire format (proto3, every field length-delimited except the packed int64 payload):
  Example  { 1: Features }
  Features { 1: repeated MapEntry { 1: key string, 2: Feature } }
  Feature  { 1: BytesList { 1: repeated bytes } | 2: FloatList { 1: packed float }
             | 3: Int64List { 1: packed varint } }
"""

from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.proto import tf_example_pb2

from data_pipeline import tokens as tokens_lib


def features(steps: int, num_genres: int) -> tfds.features.FeaturesDict:
  """The features of one musae_windows example."""
  return tfds.features.FeaturesDict({
      # Raw bytes: the token matrix is stored as it is in memory (no per-value varints).
      "tokens": tfds.features.Tensor(shape=(steps, tokens_lib.NUM_TRACKS), dtype=np.uint8,
                                     encoding=tfds.features.Encoding.BYTES,
                                     doc="Tokens per step and track (drums, bass, guitar, "
                                         "strings): 0..127 note onset, 128 silent, 129 hold."),
      "genres": tfds.features.Tensor(shape=(num_genres,), dtype=np.float32,
                                     doc="k-hot over the genre vocabulary; all zero = unlabeled."),
      "song": tfds.features.Text(doc="Path of the MIDI file relative to the MIDI folder."),
      "start_bar": tfds.features.Scalar(dtype=np.int32, doc="First bar of the window in the song."),
      "combination": tfds.features.Scalar(
          dtype=np.int32, doc="Index of the drums x bass x guitar track combination."),
  })


def _varint(value: int) -> bytes:
  if value < 0:
    value += 1 << 64  # int64 is written as its two's complement (10 bytes).
  out = bytearray()
  while True:
    low = value & 0x7F
    value >>= 7
    if value:
      out.append(low | 0x80)
    else:
      out.append(low)
      return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  """A length-delimited field (wire type 2)."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _entry(name: str, feature: bytes) -> bytes:
  """One `feature` map entry of Features."""
  return _field(1, _field(1, name.encode()) + _field(2, feature))


def _bytes_feature(value: bytes) -> bytes:
  return _field(1, _field(1, value))


def _float_feature(values: np.ndarray) -> bytes:
  payload = np.asarray(values, dtype="<f4").tobytes()
  return _field(2, _field(1, payload) if payload else b"")


def _int_feature(value: int) -> bytes:
  return _field(3, _field(1, _varint(int(value))))


class SongRecordEncoder:
  """Serializes the windows of one song into records TFDS decodes as `features(steps, G)`."""

  def __init__(self, steps: int):
    self._steps = steps
    token_bytes = steps * tokens_lib.NUM_TRACKS
    # Everything of the tokens entry before the token bytes themselves: fixed for a given size.
    self._tokens_prefix = _entry("tokens", _bytes_feature(b"\0" * token_bytes))[:-token_bytes]
    self._int_entries: dict[tuple[str, int], bytes] = {}
    self._headers: dict[int, bytes] = {}  # Record length -> the Example's tag and length.

  def _int_entry(self, name: str, value: int) -> bytes:
    key = (name, value)
    entry = self._int_entries.get(key)
    if entry is None:
      entry = self._int_entries[key] = _entry(name, _int_feature(value))
    return entry

  def encode(self, song: str, genres: np.ndarray, windows: np.ndarray, start_bars: np.ndarray,
             combinations: np.ndarray) -> list[bytes]:
    """Returns one serialized tf.train.Example per window.

    Args:
      song: the song's path relative to the MIDI folder.
      genres: float32 [G] k-hot of the song.
      windows: uint8 [N, steps, 4].
      start_bars: int [N].
      combinations: int [N].
    """
    windows = np.ascontiguousarray(windows, dtype=np.uint8)
    if windows.ndim != 3 or windows.shape[1:] != (self._steps, tokens_lib.NUM_TRACKS):
      raise ValueError(f"windows must have shape [N, {self._steps}, {tokens_lib.NUM_TRACKS}], "
                       f"got {windows.shape}")
    prefix = (_entry("song", _bytes_feature(song.encode()))
              + _entry("genres", _float_feature(genres)) + self._tokens_prefix)
    fixed_length = len(prefix) + windows[0].nbytes if len(windows) else 0
    starts = [self._int_entry("start_bar", start) for start in start_bars.tolist()]
    combination_entries = {c: self._int_entry("combination", c)
                           for c in set(combinations.tolist())}
    headers = self._headers
    records = []
    for window, start, combination in zip(windows, starts, combinations.tolist()):
      combination = combination_entries[combination]
      length = fixed_length + len(start) + len(combination)
      header = headers.get(length)
      if header is None:
        header = headers[length] = b"\n" + _varint(length)  # Example field 1, wire type 2.
      records.append(b"".join((header, prefix, window.tobytes(), start, combination)))
    return records


def decode_batch(records: Sequence[bytes], steps: int,
                 num_genres: int) -> dict[str, np.ndarray]:
  """The training features of serialized records: {"tokens": uint8 [B, steps, 4], "genres": [B, G]}.

  What TFDS's decoder gives for these two features, 5x faster: one protobuf parse (C) per record
  and no per-feature Python dispatch; the loader's hot path.
  """
  tokens = np.empty((len(records), steps, tokens_lib.NUM_TRACKS), np.uint8)
  genres = np.empty((len(records), num_genres), np.float32)
  example = tf_example_pb2.Example()
  for row, record in enumerate(records):
    example.ParseFromString(record)
    feature = example.features.feature
    tokens[row].reshape(-1)[:] = np.frombuffer(feature["tokens"].bytes_list.value[0], np.uint8)
    genres[row] = feature["genres"].float_list.value
  return {"tokens": tokens, "genres": genres}


def decode_songs(records: Sequence[bytes]) -> list[str]:
  """The song path (relative to the MIDI folder) of each serialized record."""
  example = tf_example_pb2.Example()
  songs = []
  for record in records:
    example.ParseFromString(record)
    songs.append(example.features.feature["song"].bytes_list.value[0].decode())
  return songs
