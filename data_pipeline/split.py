"""Train/validation split by song, never by window.

A song's split is a pure function of its file content (the MD5 of its bytes),
so it does not depend on file names, folder order or the number of build
workers, and a copy of a song under another name lands in the same split.
When a manifest names the artist, the artist's name decides instead, so that
no artist has songs in both splits.
"""

from __future__ import annotations

import hashlib

TRAIN, VALIDATION = "train", "validation"


def _unit_interval(key: str) -> float:
  """A number in [0, 1) drawn uniformly and deterministically from a string."""
  digest = hashlib.sha256(key.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


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
    key = "artist:" + artist_key(artist)
  else:
    key = "md5:" + content_md5.strip().lower()
  return VALIDATION if _unit_interval(key) < validation_fraction else TRAIN
