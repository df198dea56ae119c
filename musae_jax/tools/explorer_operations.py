"""The latent explorer's state and operations, without HTTP (musae_jax/tools/explore.py serves
them): a loaded run, the songs it may read (--midi_dir and uploads, never a path outside them),
encode/decode batched over concurrent callers, blends, samples, genre transfer, attribute moves,
the 2-D map, MIDI files and whole restyled songs. Every bad input is an ApiError (status, one
line)."""


import collections
import dataclasses
import hashlib
import math
import os
import re
import shutil
import threading

from absl import logging
import numpy as np

from data_pipeline import genres as genres_lib
from data_pipeline import midi_io
from data_pipeline import song as song_lib
from data_pipeline.tokens import NUM_TRACKS, TRACKS
from musae_common.errors import UserError
from musae_jax import priors
from musae_jax.tools import attributes as attributes_lib
from musae_jax.tools import generate
from musae_jax.tools import input_windows
from musae_jax.tools import request_batcher
from musae_jax.tools import runs

MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # Larger uploads are refused (413).
MAX_UPLOADS = 32  # Uploaded songs kept (oldest dropped first).
MAX_CODE_VALUE = 1e3  # |code entries| above this are refused (far outside any prior).
MAP_WINDOWS = 2048  # Windows of --midi_dir encoded for the Gaussian runs' PCA map.
SONG_CACHE = 64  # Songs whose windows are kept in memory.

_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|2e|00)", re.IGNORECASE)


class ApiError(Exception):
  """A bad request: answered with `status` and {"error": message}."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status
    self.message = message



def bilinear_weights(count: int, x: float, y: float) -> np.ndarray:
  """Weights of 2-4 corners for a puck at (x, y) in the unit square (y down). Corners are
  top-left, top-right, bottom-left, bottom-right; two codes mix along x; with three, the missing
  bottom-right corner's share is spread over the others in proportion."""
  full = np.array([(1 - x) * (1 - y), x * (1 - y), (1 - x) * y, x * y], np.float64)
  if count == 2:
    return np.array([1 - x, x], np.float64)
  weights = full[:count]
  total = weights.sum()
  return weights / total if total > 1e-12 else np.full(count, 1.0 / count)


@dataclasses.dataclass
class _Song:
  windows: song_lib.SongWindows
  path: str


class Explorer:
  """Everything the server does, without HTTP: tested directly and through the API."""

  def __init__(self, run: runs.Run, midi_dir: str | None, upload_dir: str):
    self.run = run
    self.midi_dir = os.path.abspath(midi_dir) if midi_dir else None
    self._midi_root = os.path.realpath(midi_dir) if midi_dir else None
    self.upload_dir = upload_dir
    self._model_lock = threading.Lock()  # One model call at a time (bounded memory and threads).
    self._decoder = request_batcher.RequestBatcher(self._locked_decode)
    self._songs_lock = threading.Lock()
    self._songs: collections.OrderedDict[str, _Song] = collections.OrderedDict()
    self._uploads: collections.OrderedDict[str, str] = collections.OrderedDict()  # id -> path
    self._listing: set[str] = set()
    self._map: dict | None = None
    self._attributes = self._load_attributes()

  # -- songs ----------------------------------------------------------------------------------

  def list_songs(self) -> list[str]:
    if not self.midi_dir or not os.path.isdir(self.midi_dir):
      return []
    listing = genres_lib.list_midi_files(self.midi_dir)
    with self._songs_lock:
      self._listing = set(listing)
    return listing

  def resolve(self, song_id: str) -> str:
    """The file of a song id (a relative path under --midi_dir, or an upload's id); refuses
    anything that could name a file elsewhere."""
    if not isinstance(song_id, str) or not song_id:
      raise ApiError(400, "song: expected a song id (a relative path).")
    if "\x00" in song_id or "\\" in song_id or _ENCODED_SEPARATOR.search(song_id):
      raise ApiError(400, "song: ids use plain '/' separators (no backslash, NUL or "
                     "percent-encoded separator).")
    if song_id.startswith("/") or re.match(r"^[A-Za-z]:", song_id):
      raise ApiError(400, "song: absolute paths are refused; use an id from /api/songs.")
    parts = song_id.split("/")
    if any(part in ("", ".", "..") for part in parts):
      raise ApiError(400, "song: '.', '..' and empty path parts are refused.")
    with self._songs_lock:
      if song_id in self._uploads:
        return self._uploads[song_id]
    if self._midi_root is None:
      raise ApiError(404, f"song {song_id!r}: no --midi_dir was given; upload the file.")
    real = os.path.realpath(os.path.join(self._midi_root, *parts))
    if not real.startswith(self._midi_root + os.sep):
      raise ApiError(403, f"song {song_id!r} resolves outside --midi_dir; refused.")
    with self._songs_lock:
      listed = song_id in self._listing
    if not listed:
      listed = song_id in self.list_songs()
    if not listed or not os.path.isfile(real):
      raise ApiError(404, f"song {song_id!r} is not in --midi_dir (see /api/songs).")
    return real

  def _windows(self, song_id: str) -> _Song:
    path = self.resolve(song_id)
    with self._songs_lock:
      if song_id in self._songs:
        self._songs.move_to_end(song_id)
        return self._songs[song_id]
    try:
      windows = input_windows.song_windows(path, self.run.bars)
    except UserError as error:
      raise ApiError(422, self.public_message(str(error))) from None
    song = _Song(windows, path)
    with self._songs_lock:
      self._songs[song_id] = song
      while len(self._songs) > SONG_CACHE:
        self._songs.popitem(last=False)
    return song

  def public_message(self, message: str) -> str:
    """A message without the server's folders (an upload's temporary path, --midi_dir)."""
    message = re.sub(re.escape(self.upload_dir + os.sep) + r"[0-9a-f]{16}" + re.escape(os.sep),
                     "", message)
    for root in {self.midi_dir, self._midi_root} - {None}:
      message = message.replace(root + os.sep, "")
    return message

  def song_info(self, song_id: str) -> dict:
    song = self._windows(song_id)
    windows = song.windows
    starts = sorted(set(int(b) for b in windows.start_bars))
    return {"id": song_id, "name": os.path.basename(song.path), "num_bars": int(windows.num_bars),
            "start_bars": starts, "valid_bars": input_windows.describe_bars(starts),
            "tempo_qpm": float(windows.tempo_qpm), "programs": list(windows.programs),
            "bars_per_window": self.run.bars}

  def upload(self, filename: str, data: bytes) -> dict:
    """Stores an uploaded MIDI file (bounded number kept) and checks it like /api/song."""
    if len(data) > MAX_UPLOAD_BYTES:
      raise ApiError(413, f"upload of {len(data)} bytes is over the {MAX_UPLOAD_BYTES}-byte limit.")
    name = generate.safe_file_name(os.path.basename(filename or "upload.mid"))[:100] or "upload.mid"
    digest = hashlib.sha256(data).hexdigest()[:16]
    song_id = f"upload/{digest}/{name}"
    folder = os.path.join(self.upload_dir, digest)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
      f.write(data)
    with self._songs_lock:
      self._uploads[song_id] = path
      self._uploads.move_to_end(song_id)
      while len(self._uploads) > MAX_UPLOADS:
        old_id, old_path = self._uploads.popitem(last=False)
        self._songs.pop(old_id, None)
        shutil.rmtree(os.path.dirname(old_path), ignore_errors=True)
    try:
      return self.song_info(song_id)
    except ApiError:
      with self._songs_lock:
        self._uploads.pop(song_id, None)
      shutil.rmtree(folder, ignore_errors=True)
      raise

  # -- codes ----------------------------------------------------------------------------------

  def _code(self, values) -> np.ndarray:
    code = np.asarray(values, np.float32)
    if code.shape != (self.run.latent_size,):
      raise ApiError(422, f"code: expected {self.run.latent_size} numbers, got {code.size}.")
    return code

  def _locked_decode(self, codes: np.ndarray) -> np.ndarray:
    with self._model_lock:
      return self.run.decode(codes)

  def _decode(self, codes: np.ndarray) -> np.ndarray:
    """Decodes codes [N, N_z], batched with the other clients' concurrent decodes."""
    return self._decoder(np.asarray(codes, np.float32))

  def warm_up(self) -> None:
    """Compiles the decoder for the batch sizes concurrent clients produce."""
    for rows in (1, 2, 4, 8, 16):
      self._decode(np.zeros((rows, self.run.latent_size), np.float32))

  def _encode(self, tokens: np.ndarray) -> np.ndarray:
    with self._model_lock:
      return self.run.encode(tokens)

  def _describe(self, code: np.ndarray, tokens: np.ndarray) -> dict:
    result = {"code": [float(v) for v in code], "tokens": tokens.astype(int).tolist()}
    if self.run.prior == "flower":
      component = int(priors.nearest_component(code[None], self.run.num_components)[0])
      result["nearest_component"] = component
      result["nearest_genre"] = runs.component_name(self.run, component)
    return result

  def encode(self, song_id: str, start_bar: int) -> dict:
    song = self._windows(song_id)
    try:
      window = input_windows.window_at(song.windows, song.path, self.run.bars, start_bar)
    except UserError as error:
      raise ApiError(422, self.public_message(str(error))) from None
    code = self._encode(window.tokens[None])[0]
    result = self._describe(code, self._decode(code[None])[0])
    result["reconstruction"] = result.pop("tokens")
    result.update(song=song_id, start_bar=window.start_bar,
                  input=window.tokens.astype(int).tolist(), programs=list(window.programs),
                  tempo_qpm=window.tempo_qpm)
    return result

  def decode(self, code) -> dict:
    code = self._code(code)
    return self._describe(code, self._decode(code[None])[0])

  def blend(self, codes, x: float, y: float, grid: int = 0) -> dict:
    corners = np.stack([self._code(c) for c in codes])
    code = (bilinear_weights(len(corners), x, y) @ corners).astype(np.float32)
    result = self.decode(code)
    result["weights"] = bilinear_weights(len(corners), x, y).tolist()
    if grid >= 2:
      points = np.linspace(0.0, 1.0, grid)
      mixed = np.stack([bilinear_weights(len(corners), gx, gy) @ corners
                        for gy in points for gx in points]).astype(np.float32)
      result["grid"] = self._decode(mixed).astype(int).reshape(
          grid, grid, self.run.num_steps, NUM_TRACKS).tolist()
    return result

  def _component(self, genre: str | None, component: int | None) -> int:
    if genre is not None and component is not None:
      raise ApiError(422, "give genre or component, not both.")
    if self.run.prior != "flower":
      raise ApiError(422, f"this run has the {self.run.prior} prior: it has no genre components.")
    if genre is not None:
      try:
        return runs.genre_component(self.run, genre)
      except UserError as error:
        raise ApiError(422, self.public_message(str(error))) from None
    if component is None:
      raise ApiError(422, "give genre (a name from /api/run) or component (an index).")
    if component >= self.run.num_components:
      raise ApiError(422, f"component {component} is out of range: the run has "
                     f"{self.run.num_components} (0-{self.run.num_components - 1}).")
    return component

  def sample(self, genre: str | None, component: int | None, temperature: float,
             seed: int) -> dict:
    if genre is None and component is None:
      chosen = None
    else:
      chosen = self._component(genre, component)
    code = runs.prior_codes(self.run, seed, 1, chosen, temperature)[0]
    result = self.decode(code)
    if chosen is not None:
      result["component"] = chosen
    return result

  def transfer(self, code, genre: str | None, component: int | None) -> dict:
    code = self._code(code)
    target = self._component(genre, component)
    source = int(priors.nearest_component(code[None], self.run.num_components)[0])
    moved = priors.move_to_component(code[None], source, target, self.run.num_components)[0]
    result = self.decode(moved)
    result.update(source=source, target=target,
                  source_genre=runs.component_name(self.run, source),
                  target_genre=runs.component_name(self.run, target))
    return result

  def _load_attributes(self) -> dict[str, np.ndarray]:
    path = os.path.join(self.run.workdir, attributes_lib.VECTORS_FILE)
    if not os.path.exists(path):
      return {}
    try:
      with np.load(path) as saved:
        names = [str(n) for n in saved["names"]]
      return {name: attributes_lib.load_vector(self.run.workdir, name, self.run.latent_size)
              for name in names}
    except (UserError, OSError, KeyError, ValueError) as error:
      logging.warning("Attribute vectors not loaded: %s", error)
      return {}

  def _attribute_offset(self, amounts: dict[str, float]) -> np.ndarray:
    offset = np.zeros(self.run.latent_size, np.float32)
    for name, amount in amounts.items():
      if name not in self._attributes:
        known = ", ".join(sorted(self._attributes)) or (
            "none: run python -m musae_jax.tools.attributes --workdir=RUN first")
        raise ApiError(422, f"attribute {name!r} is unknown; available: {known}.")
      offset += np.float32(amount) * self._attributes[name]
    return offset

  def attribute(self, code, amounts: dict[str, float]) -> dict:
    code = self._code(code)
    return self.decode(code + self._attribute_offset(amounts))

  def latent_map(self) -> dict:
    """A 2-D map of the codes: dims 0-1 with the components (flower), or the top two principal
    axes of the codes of --midi_dir's windows (Gaussian); points are the songs' mean codes."""
    if self._map is not None:
      return self._map
    points, mean, basis = [], np.zeros(self.run.latent_size), np.eye(2, self.run.latent_size)
    codes = songs = names = None
    if self.midi_dir:
      try:
        # The map needs no genres; a one-tag vocabulary sidesteps midi_dir_windows' reshape of
        # an empty k-hot matrix (a Gaussian run has no genres).
        windows = input_windows.midi_dir_windows(self.midi_dir, self.run.bars,
                                                 self.run.genres or ["none"],
                                                 max_windows=MAP_WINDOWS)
        codes = self._encode(windows.tokens)
        songs, names = windows.songs, windows.song_names
      except UserError as error:
        logging.warning("No song codes for the map: %s", error)
    if self.run.prior != "flower" and codes is not None and len(codes) >= 2:
      mean = codes.mean(axis=0)
      _, _, vt = np.linalg.svd(codes - mean, full_matrices=False)
      basis = vt[:2] if len(vt) >= 2 else basis
    if codes is not None:
      projected = (codes - mean) @ basis.T
      for index, name in enumerate(names):
        rows = songs == index
        if rows.any():
          x, y = projected[rows].mean(axis=0)
          points.append({"song": name, "x": float(x), "y": float(y)})
    result = {"kind": "flower" if self.run.prior == "flower" else "pca",
              "mean": mean.astype(float).tolist(), "basis": basis.astype(float).tolist(),
              "points": points}
    if self.run.prior == "flower":
      result["components"] = self._components()
    self._map = result
    return result

  def _components(self) -> list[dict]:
    count = self.run.num_components
    return [{"index": k, "name": runs.component_name(self.run, k),
             "angle": 2.0 * math.pi * k / count} for k in range(count)]

  def run_info(self) -> dict:
    return {"workdir": os.path.basename(os.path.normpath(self.run.workdir)),
            "step": self.run.step, "bars": self.run.bars, "num_steps": self.run.num_steps,
            "latent_size": self.run.latent_size, "prior": self.run.prior,
            "genres": self.run.genres,
            "components": self._components() if self.run.prior == "flower" else [],
            "attributes": sorted(self._attributes), "tracks": list(TRACKS),
            "default_programs": list(generate.DEFAULT_PROGRAMS),
            "default_tempo_qpm": generate.DEFAULT_TEMPO_QPM,
            "max_upload_bytes": MAX_UPLOAD_BYTES}

  # -- MIDI -----------------------------------------------------------------------------------

  @staticmethod
  def midi(tokens, programs=None, tempo_qpm=None) -> bytes:
    """The MIDI file generate writes for these tokens."""
    return midi_io.midi_bytes(np.asarray(tokens, np.uint8),
                              programs=tuple(programs or generate.DEFAULT_PROGRAMS),
                              tempo_qpm=float(tempo_qpm or generate.DEFAULT_TEMPO_QPM))

  def whole_song(self, request) -> tuple[bytes, int]:
    """(MIDI bytes, number of windows) of a whole song restyled (request: explore's
    WholeSongRequest, validated)."""
    path = self.resolve(request.song)
    if request.mode == "transfer":
      move = generate.component_move(self.run, self._component(request.genre, request.component))
    elif request.mode == "attribute":
      if not request.amounts:
        raise ApiError(422, "attribute: give amounts, e.g. {\"bass_note_density\": 1.5}.")
      offset = self._attribute_offset(request.amounts)
      move = lambda codes: codes + offset[None]
    elif request.mode == "blend":
      if request.code is None:
        raise ApiError(422, "blend: give code (the code to mix every window with).")
      other, alpha = self._code(request.code), request.alpha
      move = lambda codes: (1 - alpha) * codes + alpha * other[None]
    else:
      move = lambda codes: codes
    try:
      with self._model_lock:
        song = generate.restyle_song(self.run, path, move)
    except UserError as error:
      raise ApiError(422, self.public_message(str(error))) from None
    return self.midi(song.restyled, song.programs, song.tempo_qpm), song.num_windows
