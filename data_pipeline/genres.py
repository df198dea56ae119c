"""Genre labels of MIDI files, the genre vocabulary of a build, and k-hot vectors.

Labels come from one of two kinds of `genres_file`:
  * a JSON object {path relative to the MIDI folder: [tag, ...]}, such as the
    corpus's genres.json;
  * the Lakh Pianoroll Dataset label lists (the `lpd_labels.tar.gz` archive or
    the folder it unpacks to), `labels/<source>/id_list_<Tag>.txt` with one
    Million Song Dataset track ID per line. Files in an LMD-style folder,
    .../<MSD track ID>/<md5>.mid, get the tags of their track ID from every
    source, lower-cased with "_" written "-" (amg "Pop_Rock" -> "pop-rock"),
    as MusAE took genres from the MSD through LMD.
"""

from __future__ import annotations

import collections
import json
import os
import re
import tarfile
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from musae_common.errors import UserError

MAX_GENRES = 32  # Vocabulary size: the most frequent tags of a build.
MIDI_EXTENSIONS = (".mid", ".midi")
_MSD_TRACK_ID = re.compile(r"^TR[A-Z0-9]{16}$")
_ID_LIST = re.compile(r"(?:^|/)id_list_(.+)\.txt$")


class GenreLabelsError(UserError):
  """A genres file that cannot be used; str() is one line naming the file."""


def load_labels(midi_dir: str, genres_file: str | None) -> dict[str, list[str]]:
  """{path relative to midi_dir: sorted tags} from a JSON file or the LPD label lists.

  With the LPD lists, every MIDI file under midi_dir whose parent folder is an
  MSD track ID gets an entry ([] when the lists know no tag for it); other
  files get none. None or "" gives {}. Raises GenreLabelsError.
  """
  if not genres_file:
    return {}
  if not os.path.exists(genres_file):
    raise GenreLabelsError(f"{genres_file}: genres file not found")
  if os.path.isdir(genres_file) or tarfile.is_tarfile(genres_file):
    return _lmd_labels(midi_dir, _lpd_tags(genres_file), genres_file)
  return _json_labels(genres_file)


def _json_labels(genres_file: str) -> dict[str, list[str]]:
  try:
    with open(genres_file, encoding="utf-8") as f:
      content = json.load(f)
  except json.JSONDecodeError as error:
    raise GenreLabelsError(f"{genres_file}: not valid JSON (line {error.lineno}, column "
                           f"{error.colno}: {error.msg})") from None
  except (OSError, UnicodeDecodeError) as error:
    raise GenreLabelsError(f"{genres_file}: cannot be read ({error})") from None
  if not isinstance(content, dict):
    raise GenreLabelsError(f"{genres_file}: expected a JSON object {{relative path: [tags]}}, "
                           f"got {type(content).__name__}")
  labels = {}
  for path, tags in content.items():
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
      raise GenreLabelsError(f"{genres_file}: the tags of {path!r} must be a list of strings")
    labels[os.path.normpath(path)] = sorted({tag.strip() for tag in tags if tag.strip()})
  return labels


def _lpd_tag(name: str) -> str:
  return name.strip().lower().replace("_", "-")


def _id_lists(source: str) -> Iterator[tuple[str, bytes]]:
  """(tag, content) of each id_list_<Tag>.txt in an LPD archive or folder."""
  if os.path.isdir(source):
    for root, _, names in os.walk(source):
      for name in sorted(names):
        match = _ID_LIST.search(name)
        if match:
          with open(os.path.join(root, name), "rb") as f:
            yield _lpd_tag(match.group(1)), f.read()
    return
  try:
    with tarfile.open(source) as archive:
      for member in archive:
        match = _ID_LIST.search(member.name)
        if match and member.isfile():
          yield _lpd_tag(match.group(1)), archive.extractfile(member).read()
  except (tarfile.TarError, OSError, EOFError) as error:
    raise GenreLabelsError(f"{source}: unreadable label archive ({error})") from None


def _lpd_tags(source: str) -> dict[str, set[str]]:
  """{MSD track ID: tags} from the LPD label lists."""
  tags: dict[str, set[str]] = collections.defaultdict(set)
  lists = 0
  for tag, content in _id_lists(source):
    lists += 1
    for track_id in content.decode("ascii", "replace").split():
      tags[track_id].add(tag)
  if not lists:
    raise GenreLabelsError(f"{source}: no id_list_<tag>.txt label list in it")
  return tags


def _lmd_labels(midi_dir: str, tags: Mapping[str, set[str]], source: str) -> dict[str, list[str]]:
  labels = {}
  for root, _, names in os.walk(midi_dir):
    track_id = os.path.basename(root)
    if not _MSD_TRACK_ID.match(track_id):
      continue
    for name in names:
      if name.lower().endswith(MIDI_EXTENSIONS):
        relative = os.path.relpath(os.path.join(root, name), midi_dir)
        labels[relative] = sorted(tags.get(track_id, ()))
  if not labels:
    raise GenreLabelsError(f"{source}: LPD label lists need an LMD-style folder "
                           f"(.../<MSD track ID>/<md5>.mid), none found under {midi_dir}")
  return labels


def build_vocabulary(labels: Mapping[str, Sequence[str]], max_genres: int = MAX_GENRES) -> list[str]:
  """The `max_genres` most frequent tags (fewer if fewer exist), most frequent first.

  Ties are broken alphabetically, so a build's vocabulary depends only on its labels.
  """
  counts = collections.Counter(tag for tags in labels.values() for tag in set(tags))
  ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
  return [tag for tag, _ in ranked[:max_genres]]


def k_hot(tags: Iterable[str], vocabulary: Sequence[str]) -> np.ndarray:
  """float32 [len(vocabulary)]: 1 for each tag in the vocabulary (others are ignored)."""
  index = {tag: i for i, tag in enumerate(vocabulary)}
  vector = np.zeros(len(vocabulary), np.float32)
  for tag in tags:
    if tag in index:
      vector[index[tag]] = 1.0
  return vector


def list_midi_files(midi_dir: str) -> list[str]:
  """Paths (relative, "/"-separated, sorted) of the MIDI files under midi_dir: what a build
  reads and what a labels file can name."""
  found = []
  for root, dirs, files in os.walk(midi_dir, followlinks=True):
    dirs.sort()
    for name in files:
      if os.path.splitext(name)[1].lower() in MIDI_EXTENSIONS:
        relative = os.path.relpath(os.path.join(root, name), midi_dir)
        found.append(relative.replace(os.sep, "/"))
  return sorted(found)
