"""Train/validation split by song, never by window.

A song's split is a pure function of its file content: the MD5 of its bytes,
read as a number in [0, 1), is compared with the validation fraction. So it
does not depend on file names, folder order or the number of build workers,
and a copy of a song under another name lands in the same split. When a
manifest names the artist, the MD5 of the artist's name decides instead, so
that no artist has songs in both splits.
"""

from __future__ import annotations

import hashlib

TRAIN, VALIDATION = "train", "validation"


def _unit_interval(md5_hex: str) -> float:
  """An MD5 read as a number in [0, 1): uniform over songs, as MD5s are."""
  try:
    return int(md5_hex, 16) / 16.0**len(md5_hex)
  except ValueError:
    raise ValueError(f"not a hexadecimal MD5: {md5_hex!r}") from None


def artist_key(artist: str) -> str:
  """The form of an artist's name that decides its split: case and spacing ignored."""
  return " ".join(artist.casefold().split())


def song_split(content_md5: str, validation_fraction: float = 0.2,
               artist: str | None = None) -> str:
  """"train" or "validation" for a song, about `validation_fraction` of them validation.

  Args:
    content_md5: hex MD5 of the MIDI file's bytes.
    validation_fraction: share of songs (or of artists) in validation, in [0, 1].
    artist: the song's artist, when known; all songs of an artist share a split.
  """
  if not 0.0 <= validation_fraction <= 1.0:
    raise ValueError(f"validation_fraction must be in [0, 1], got {validation_fraction}")
  if artist is not None and artist.strip():
    content_md5 = hashlib.md5(artist_key(artist).encode("utf-8")).hexdigest()
  return VALIDATION if _unit_interval(content_md5.strip()) < validation_fraction else TRAIN
