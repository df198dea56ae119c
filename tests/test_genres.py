"""Tests of genre labels, the genre vocabulary and k-hot vectors."""

import json
import re
import shutil
import tarfile

import numpy as np
import pytest

from data_pipeline import genres

ALIGNED = "lmd/lmd_aligned/A/A/A"


def test_json_labels_are_the_corpus_tags(shared_data):
  labels = genres.load_labels(str(shared_data / "midi"), str(shared_data / "genres.json"))
  assert len(labels) == sum(1 for _ in (shared_data / "midi").rglob("*.mid"))
  assert labels["freemidi/rock/3214.mid"] == ["rock"]
  assert labels["miditok/Aicha.mid"] == []


def test_lmd_paths_take_their_tags_from_the_lpd_lists(shared_data):
  archive = str(shared_data / "labels" / "lpd_labels.tar.gz")
  labels = genres.load_labels(str(shared_data / "midi"), archive)
  # Exactly the files under an MSD track ID folder.
  assert sorted(labels) == sorted(
      str(p.relative_to(shared_data / "midi")) for p in (shared_data / "midi" / ALIGNED).rglob("*.mid"))
  # The README's tags: tagtraum + AMG + Last.fm, lower-cased ("Pop_Rock" -> "pop-rock").
  reference = json.loads((shared_data / "genres.json").read_text())
  assert labels == {path: sorted(reference[path]) for path in labels}
  assert sum("pop-rock" in tags for tags in labels.values()) == 1  # AMG's "Pop_Rock"


def test_lpd_lists_also_work_unpacked(shared_data, tmp_path):
  with tarfile.open(shared_data / "labels" / "lpd_labels.tar.gz") as archive:
    archive.extractall(tmp_path / "lpd", filter="data")
  midi = tmp_path / "midi" / ALIGNED / "TRAAAGR128F425B14B"
  midi.mkdir(parents=True)
  source = next((shared_data / "midi" / ALIGNED / "TRAAAGR128F425B14B").glob("*.mid"))
  shutil.copy(source, midi / source.name)
  labels = genres.load_labels(str(tmp_path / "midi"), str(tmp_path / "lpd"))
  assert labels == {f"{ALIGNED}/TRAAAGR128F425B14B/{source.name}": [
      "00s", "alternative", "american", "catchy", "dance", "electronic", "electronica", "female",
      "happy", "house", "party", "pop", "pop-rock", "rock", "sexy"]}


def test_vocabulary_is_the_most_frequent_tags(shared_data):
  labels = genres.load_labels(str(shared_data / "midi"), str(shared_data / "genres.json"))
  vocabulary = genres.build_vocabulary(labels)
  assert len(vocabulary) == min(32, len({t for tags in labels.values() for t in tags}))
  assert vocabulary[:6] == ["rock", "pop", "country", "rap_hip_hop", "rnb_soul", "classic"]
  assert genres.build_vocabulary(labels, max_genres=3) == ["rock", "pop", "country"]
  # Ties are alphabetical, whatever the order of the labels.
  assert genres.build_vocabulary({"a": ["y", "x"], "b": ["z"]}) == ["x", "y", "z"]
  assert genres.build_vocabulary({}) == []


def test_k_hot():
  vector = genres.k_hot(["pop", "jazz", "rock"], ["rock", "pop", "country"])
  assert vector.dtype == np.float32
  np.testing.assert_array_equal(vector, [1, 1, 0])
  np.testing.assert_array_equal(genres.k_hot([], ["rock"]), [0])
  assert genres.k_hot(["rock"], []).shape == (0,)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON (line 1"),
    ("[1, 2]", "expected a JSON object"),
    ('{"a.mid": "rock"}', "the tags of 'a.mid' must be a list of strings"),
])
def test_a_bad_genres_file_is_one_clear_line(tmp_path, content, message):
  path = tmp_path / "genres.json"
  path.write_text(content)
  with pytest.raises(genres.GenreLabelsError, match=re.escape(message)) as raised:
    genres.load_labels(str(tmp_path), str(path))
  assert str(raised.value).startswith(str(path)) and "\n" not in str(raised.value)


def test_missing_or_no_genres_file(tmp_path):
  assert genres.load_labels(str(tmp_path), None) == {}
  assert genres.load_labels(str(tmp_path), "") == {}
  with pytest.raises(genres.GenreLabelsError, match="not found"):
    genres.load_labels(str(tmp_path), str(tmp_path / "nope.json"))


def test_lpd_lists_without_an_lmd_folder_say_so(shared_data, tmp_path):
  with pytest.raises(genres.GenreLabelsError, match="LMD-style folder"):
    genres.load_labels(str(tmp_path), str(shared_data / "labels" / "lpd_labels.tar.gz"))
