"""Tests of the song-level train/validation split."""

import collections
import csv

import pytest

from data_pipeline import split


@pytest.fixture(scope="module")
def manifest(shared_data):
  with open(shared_data / "manifest.csv", newline="") as f:
    return list(csv.DictReader(f))


def test_split_is_deterministic_and_about_80_20(manifest):
  splits = [split.song_split(row["md5"]) for row in manifest]
  assert splits == [split.song_split(row["md5"]) for row in manifest]
  share = splits.count("validation") / len(splits)
  assert 0.17 < share < 0.23, share
  assert set(splits) == {"train", "validation"}


def test_validation_fraction_is_configurable(manifest):
  share = sum(split.song_split(r["md5"], 0.5) == "validation" for r in manifest) / len(manifest)
  assert 0.45 < share < 0.55
  assert {split.song_split(r["md5"], 0.0) for r in manifest} == {"train"}
  assert {split.song_split(r["md5"], 1.0) for r in manifest} == {"validation"}
  # Growing the fraction only moves songs from train to validation.
  for row in manifest[:200]:
    if split.song_split(row["md5"], 0.1) == "validation":
      assert split.song_split(row["md5"], 0.3) == "validation"
  with pytest.raises(ValueError, match="validation_fraction"):
    split.song_split("00", 1.5)


def test_artists_never_straddle_the_split(manifest):
  by_artist = collections.defaultdict(set)
  for row in manifest:
    if row["artist"].strip():
      by_artist[split.artist_key(row["artist"])].add(
          split.song_split(row["md5"], artist=row["artist"]))
  assert len(by_artist) > 100
  assert all(len(splits) == 1 for splits in by_artist.values())
  validation = sum("validation" in s for s in by_artist.values()) / len(by_artist)
  assert 0.14 < validation < 0.26, validation
  assert split.song_split("ab", artist="The  Beatles") == split.song_split("cd", artist="the beatles")


def test_a_song_without_artist_splits_by_content(manifest):
  row = manifest[0]
  assert split.song_split(row["md5"], artist=None) == split.song_split(row["md5"], artist="  ")
  assert split.song_split(row["md5"].upper()) == split.song_split(row["md5"])
