r"""The latent explorer: a local web page to blend songs, move them around the genre flower,
listen to them and download them, over a JSON API that scripts can use too.

  python -m musae_jax.explore --workdir=RUN [--midi_dir=DIR] [--port=8000] [--host=127.0.0.1]

The run is loaded once (parameters only, like the other tools). The page and its assets ship in
musae_jax/explorer_static/ (the synth, Tone.js, vendored with its license); nothing is fetched
from another host (Content-Security-Policy: default-src 'self'). Songs come from --midi_dir (the
demo songs by default) or are uploaded (at most MAX_UPLOAD_BYTES). No file outside --midi_dir,
the uploads and the static folder is ever read: song ids are checked ("..", absolute paths,
encoded separators, symbolic links that leave the folder are refused) and static files are
served from a fixed list read at start-up. Every bad input gets a 4xx answer with a one-line
{"error": ...}; the encode/decode calls reuse musae_jax.inference and musae_jax.generate.

JSON API (every code is a list of latent_size floats; tokens are [steps][4] ints 0-129):
  GET  /api/run                   the run: bars, latent size, prior, genres, attribute names
  GET  /api/songs                 the songs of --midi_dir (ids are "/"-separated relative paths)
  GET  /api/song?id=ID            its valid window start bars, or 422 with the rejection
  POST /api/upload                multipart field "file": a MIDI file -> like /api/song
  POST /api/encode                {song, start_bar} -> window tokens, code, reconstruction
  POST /api/decode                {code} -> tokens
  POST /api/blend                 {codes: 2-4, x, y[, grid]} -> bilinear mix of the codes, tokens
  POST /api/sample                {genre | component, temperature, seed} -> code, tokens
  POST /api/transfer              {code, genre | component} -> the code rotated to that component
  POST /api/attribute             {code, amounts: {name: amount}} -> code + sum amount * vector
  GET  /api/map                   2-D map of the codes: dims 0-1 (flower) or PCA (Gaussian)
  POST /api/midi                  {tokens[, programs, tempo_qpm]} -> audio/midi file
  POST /api/whole_song            {song, mode, ...} -> the whole song restyled, audio/midi file
"""

import asyncio
import collections
import dataclasses
import hashlib
import json
import math
import mimetypes
import os
import re
import shutil
import sys
import tempfile
import threading
from typing import Annotated, Literal

from absl import app
from absl import flags
from absl import logging
import numpy as np
import pydantic
from starlette.exceptions import HTTPException

from data_pipeline import genres as genres_lib
from data_pipeline import midi_io
from data_pipeline import song as song_lib
from data_pipeline.tokens import HOLD, NUM_TRACKS, STEPS_PER_BAR, TRACKS
from musae_jax import cli
from musae_jax import attributes as attributes_lib
from musae_jax import generate
from musae_jax import inference
from musae_jax.errors import UserError

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explorer_static")
DEMO_MIDI_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "demo_data", "midi")
MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # Larger uploads get 413.
MAX_UPLOADS = 32  # Uploaded songs kept (oldest dropped first).
MAX_CODE_VALUE = 1e3  # |code entries| above this are refused (far outside any prior).
MAP_WINDOWS = 2048  # Windows of --midi_dir encoded for the Gaussian runs' PCA map.
SONG_CACHE = 64  # Songs whose windows are kept in memory.
CONTENT_SECURITY_POLICY = "default-src 'self'"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|2e|00)", re.IGNORECASE)


class ApiError(Exception):
  """A bad request: answered with `status` and {"error": message}."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status
    self.message = message


# ---------------------------------------------------------------------------------------------
# Requests (pydantic validates shapes and ranges; failures become 422 with one line).

Finite = Annotated[float, pydantic.Field(allow_inf_nan=False, ge=-MAX_CODE_VALUE,
                                         le=MAX_CODE_VALUE)]
Code = Annotated[list[Finite], pydantic.Field(min_length=1, max_length=4096)]
Token = Annotated[int, pydantic.Field(ge=0, le=HOLD)]


class _Request(pydantic.BaseModel):
  model_config = pydantic.ConfigDict(extra="forbid")


class EncodeRequest(_Request):
  song: Annotated[str, pydantic.Field(min_length=1, max_length=1024)]
  start_bar: Annotated[int, pydantic.Field(ge=-1, le=song_lib.MAX_BARS)] = -1


class DecodeRequest(_Request):
  code: Code


class BlendRequest(_Request):
  codes: Annotated[list[Code], pydantic.Field(min_length=2, max_length=4)]
  x: Annotated[float, pydantic.Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.5
  y: Annotated[float, pydantic.Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.5
  grid: Annotated[int, pydantic.Field(ge=0, le=8)] = 0  # >= 2: also an NxN grid of tokens.


class SampleRequest(_Request):
  genre: Annotated[str, pydantic.Field(max_length=200)] | None = None
  component: Annotated[int, pydantic.Field(ge=0, le=10_000)] | None = None
  temperature: Annotated[float, pydantic.Field(ge=0.0, le=5.0, allow_inf_nan=False)] = 1.0
  seed: Annotated[int, pydantic.Field(ge=0, le=2**31 - 1)] = 0


class TransferRequest(_Request):
  code: Code
  genre: Annotated[str, pydantic.Field(max_length=200)] | None = None
  component: Annotated[int, pydantic.Field(ge=0, le=10_000)] | None = None


Amount = Annotated[float, pydantic.Field(ge=-10.0, le=10.0, allow_inf_nan=False)]


class AttributeRequest(_Request):
  code: Code
  amounts: Annotated[dict[Annotated[str, pydantic.Field(max_length=200)], Amount],
                     pydantic.Field(max_length=64)]


class MidiRequest(_Request):
  tokens: Annotated[list[Annotated[list[Token], pydantic.Field(min_length=NUM_TRACKS,
                                                               max_length=NUM_TRACKS)]],
                    pydantic.Field(min_length=1, max_length=song_lib.MAX_BARS * STEPS_PER_BAR)]
  programs: Annotated[list[Annotated[int, pydantic.Field(ge=0, le=127)]],
                      pydantic.Field(min_length=NUM_TRACKS,
                                     max_length=NUM_TRACKS)] | None = None
  tempo_qpm: Annotated[float, pydantic.Field(gt=0.0, le=1000.0, allow_inf_nan=False)] | None = None
  name: Annotated[str, pydantic.Field(max_length=200)] = "musae"


class WholeSongRequest(_Request):
  song: Annotated[str, pydantic.Field(min_length=1, max_length=1024)]
  mode: Literal["reconstruct", "transfer", "attribute", "blend"] = "reconstruct"
  genre: Annotated[str, pydantic.Field(max_length=200)] | None = None
  component: Annotated[int, pydantic.Field(ge=0, le=10_000)] | None = None
  amounts: Annotated[dict[Annotated[str, pydantic.Field(max_length=200)], Amount],
                     pydantic.Field(max_length=64)] = {}
  code: Code | None = None  # blend: every window's code mixed with this one
  alpha: Annotated[float, pydantic.Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.5


# ---------------------------------------------------------------------------------------------
# The explorer: a loaded run, the songs it may read, and the operations behind the API.

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


class _Batcher:
  """Runs a batched function for concurrent callers: whoever finds it idle runs it on every
  request waiting at that moment (concatenated, at most max_rows rows), then on the next ones,
  while the others wait for their rows. One model call at a time, and 8 clients cost about one
  batched call rather than 8 queued ones."""

  def __init__(self, function, max_rows: int = 64):
    self._function = function
    self._max_rows = max_rows
    self._lock = threading.Lock()
    self._pending: list[dict] = []
    self._running = False

  def __call__(self, rows: np.ndarray) -> np.ndarray:
    request = {"rows": rows, "done": threading.Event(), "result": None, "error": None}
    with self._lock:
      self._pending.append(request)
      leader = not self._running
      self._running = True
    if leader:
      self._drain()
    request["done"].wait()
    if request["error"] is not None:
      raise request["error"]
    return request["result"]

  def _drain(self) -> None:
    while True:
      with self._lock:
        batch, count = [], 0
        while self._pending and (not batch or
                                 count + len(self._pending[0]["rows"]) <= self._max_rows):
          batch.append(self._pending.pop(0))
          count += len(batch[-1]["rows"])
        if not batch:
          self._running = False
          return
      try:
        results = self._function(np.concatenate([r["rows"] for r in batch]))
        start = 0
        for request in batch:
          request["result"] = results[start:start + len(request["rows"])]
          start += len(request["rows"])
      except Exception as error:  # pylint: disable=broad-except  # Handed to each caller.
        for request in batch:
          request["error"] = error
      for request in batch:
        request["done"].set()


@dataclasses.dataclass
class _Song:
  windows: song_lib.SongWindows
  path: str


class Explorer:
  """Everything the server does, without HTTP: tested directly and through the API."""

  def __init__(self, run: inference.Run, midi_dir: str | None, upload_dir: str):
    self.run = run
    self.midi_dir = os.path.abspath(midi_dir) if midi_dir else None
    self._midi_root = os.path.realpath(midi_dir) if midi_dir else None
    self.upload_dir = upload_dir
    self._model_lock = threading.Lock()  # One model call at a time (bounded memory and threads).
    self._decoder = _Batcher(self._locked_decode)
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
      windows = inference.song_windows(path, self.run.bars)
    except UserError as error:
      raise ApiError(422, self._public(str(error))) from None
    song = _Song(windows, path)
    with self._songs_lock:
      self._songs[song_id] = song
      while len(self._songs) > SONG_CACHE:
        self._songs.popitem(last=False)
    return song

  def _public(self, message: str) -> str:
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
            "start_bars": starts, "valid_bars": inference.describe_bars(starts),
            "tempo_qpm": float(windows.tempo_qpm), "programs": list(windows.programs),
            "bars_per_window": self.run.bars}

  def upload(self, filename: str, data: bytes) -> dict:
    """Stores an uploaded MIDI file (bounded number kept) and checks it like /api/song."""
    if len(data) > MAX_UPLOAD_BYTES:
      raise ApiError(413, f"upload of {len(data)} bytes is over the {MAX_UPLOAD_BYTES}-byte limit.")
    name = generate._safe(os.path.basename(filename or "upload.mid"))[:100] or "upload.mid"  # pylint: disable=protected-access
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
      component = int(inference.nearest_component(code[None], self.run.num_components)[0])
      result["nearest_component"] = component
      result["nearest_genre"] = inference.component_name(self.run, component)
    return result

  def encode(self, song_id: str, start_bar: int) -> dict:
    song = self._windows(song_id)
    try:
      window = inference.window_at(song.windows, song.path, self.run.bars, start_bar)
    except UserError as error:
      raise ApiError(422, self._public(str(error))) from None
    code = self._encode(window.tokens[None])[0]
    result = self._describe(code, self._decode(code[None])[0])
    result["reconstruction"] = result.pop("tokens")
    result.update(song=song_id, start_bar=window.start_bar, input=window.tokens.astype(int).tolist(),
                  programs=list(window.programs), tempo_qpm=window.tempo_qpm)
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
        return inference.genre_component(self.run, genre)
      except UserError as error:
        raise ApiError(422, self._public(str(error))) from None
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
    code = inference.prior_codes(self.run, seed, 1, chosen, temperature)[0]
    result = self.decode(code)
    if chosen is not None:
      result["component"] = chosen
    return result

  def transfer(self, code, genre: str | None, component: int | None) -> dict:
    code = self._code(code)
    target = self._component(genre, component)
    source = int(inference.nearest_component(code[None], self.run.num_components)[0])
    moved = inference.move_to_component(code[None], source, target, self.run.num_components)[0]
    result = self.decode(moved)
    result.update(source=source, target=target,
                  source_genre=inference.component_name(self.run, source),
                  target_genre=inference.component_name(self.run, target))
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
            "none: run python -m musae_jax.attributes --workdir=RUN first")
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
        windows = inference.midi_dir_windows(self.midi_dir, self.run.bars,
                                             self.run.genres or ["none"], max_windows=MAP_WINDOWS)
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
    return [{"index": k, "name": inference.component_name(self.run, k),
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

  def whole_song(self, request: WholeSongRequest) -> tuple[bytes, int]:
    """(MIDI bytes, number of windows) of a whole song restyled."""
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
      raise ApiError(422, self._public(str(error))) from None
    return self.midi(song.restyled, song.programs, song.tempo_qpm), song.num_windows


# ---------------------------------------------------------------------------------------------
# HTTP.

class _UploadLimit:
  """ASGI middleware: a request body over `limit` bytes gets 413 before it is all read."""

  def __init__(self, app_, limit: int):
    self.app = app_
    self.limit = limit

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    headers = dict(scope.get("headers") or [])
    length = headers.get(b"content-length")
    try:
      declared = int(length) if length is not None else None
    except ValueError:
      declared = None
    if declared is not None and declared > self.limit:
      return await _send_json(send, 413, {"error": f"request body of {declared} bytes is over "
                                          f"the {self.limit}-byte limit."})
    received = 0
    started = False

    async def counting_receive():
      nonlocal received
      message = await receive()
      if message["type"] == "http.request":
        received += len(message.get("body", b""))
        if received > self.limit:
          raise _TooLarge(self.limit)
      return message

    async def tracking_send(message):
      nonlocal started
      if message["type"] == "http.response.start":
        started = True
      await send(message)

    try:
      await self.app(scope, counting_receive, tracking_send)
    except _TooLarge:
      if not started:
        await _send_json(send, 413, {"error": f"request body is over the {self.limit}-byte "
                                     "limit."})


class _TooLarge(HTTPException):
  """Raised while reading a body over the limit (answered 413 by the API's handler)."""

  def __init__(self, limit: int):
    super().__init__(413, f"request body is over the {limit}-byte limit.")


async def _send_json(send, status: int, payload: dict) -> None:
  body = json.dumps(payload).encode()
  await send({"type": "http.response.start", "status": status,
              "headers": [(b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode()),
                          (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())]})
  await send({"type": "http.response.body", "body": body})


def _static_files() -> dict[str, tuple[bytes, str]]:
  """{name: (bytes, media type)} of the page's assets: regular files of STATIC_DIR (symbolic
  links skipped), read once; nothing else is ever served."""
  files = {}
  for root, _, names in os.walk(STATIC_DIR):
    for name in names:
      path = os.path.join(root, name)
      if os.path.islink(path) or not os.path.isfile(path):
        continue
      relative = os.path.relpath(path, STATIC_DIR).replace(os.sep, "/")
      media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
      if name.endswith(".js"):
        media_type = "text/javascript"
      with open(path, "rb") as f:
        files[relative] = (f.read(), media_type)
  return files


def _validation_message(errors) -> str:
  """One line from pydantic's errors: where and what."""
  parts = []
  for error in errors[:3]:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    message = error.get("msg", "invalid")
    if error.get("type") == "json_invalid":
      return "malformed JSON in the request body."
    parts.append(f"{where or 'body'}: {message}")
  more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
  return "; ".join(parts) + more + "."


def create_app(explorer: Explorer):
  """The FastAPI application serving the page and the JSON API."""
  # Imported here: the web stack is needed only by the server, not by the other tools.
  import fastapi  # pylint: disable=g-import-not-at-top
  from fastapi import responses  # pylint: disable=g-import-not-at-top
  from fastapi.exceptions import RequestValidationError  # pylint: disable=g-import-not-at-top

  api = fastapi.FastAPI(title="MusAE latent explorer", docs_url=None, redoc_url=None,
                        openapi_url=None)
  static = _static_files()

  def error(status: int, message: str):
    return responses.JSONResponse({"error": message}, status_code=status)

  @api.exception_handler(ApiError)
  async def _api_error(_, exc: ApiError):
    return error(exc.status, exc.message)

  @api.exception_handler(RequestValidationError)
  async def _validation_error(_, exc: RequestValidationError):
    return error(422, _validation_message(exc.errors()))

  @api.exception_handler(HTTPException)
  async def _http_error(_, exc: HTTPException):
    detail = exc.detail if isinstance(exc.detail, str) else "bad request"
    return error(exc.status_code, detail)

  @api.exception_handler(UserError)
  async def _user_error(_, exc: UserError):
    return error(422, explorer._public(str(exc)))  # pylint: disable=protected-access

  @api.middleware("http")
  async def _headers(request, call_next):
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response

  def asset(name: str):
    if name not in static:
      return error(404, f"no such file: {name[:100]}")
    body, media_type = static[name]
    return responses.Response(body, media_type=media_type,
                              headers={"Cache-Control": "no-cache"})

  @api.get("/")
  def index():
    return asset("index.html")

  @api.get("/static/{name:path}")
  def static_file(name: str):
    return asset(name)

  @api.get("/api/run")
  def run_info():
    return explorer.run_info()

  @api.get("/api/songs")
  def songs():
    return {"midi_dir": os.path.basename(explorer.midi_dir or ""),
            "songs": [{"id": s, "name": os.path.basename(s)} for s in explorer.list_songs()]}

  @api.get("/api/song")
  def song(id: str = ""):  # pylint: disable=redefined-builtin
    return explorer.song_info(id)

  @api.post("/api/upload")
  async def upload(request: fastapi.Request):
    try:
      form = await request.form(max_files=1, max_fields=4)
    except HTTPException:
      raise
    except Exception as exc:  # pylint: disable=broad-except
      raise ApiError(400, f"upload: expected a multipart form with a 'file' field ({exc}).")
    file = form.get("file")
    if file is None or isinstance(file, str):
      raise ApiError(400, "upload: expected a multipart form with a 'file' field.")
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    name = file.filename or "upload.mid"
    await form.close()
    return await asyncio.to_thread(explorer.upload, name, data)

  @api.post("/api/encode")
  def encode(request: EncodeRequest):
    return explorer.encode(request.song, request.start_bar)

  @api.post("/api/decode")
  def decode(request: DecodeRequest):
    return explorer.decode(request.code)

  @api.post("/api/blend")
  def blend(request: BlendRequest):
    if request.grid == 1:
      raise ApiError(422, "grid: 0 (none) or 2-8 points per side.")
    return explorer.blend(request.codes, request.x, request.y, request.grid)

  @api.post("/api/sample")
  def sample(request: SampleRequest):
    return explorer.sample(request.genre, request.component, request.temperature, request.seed)

  @api.post("/api/transfer")
  def transfer(request: TransferRequest):
    return explorer.transfer(request.code, request.genre, request.component)

  @api.post("/api/attribute")
  def attribute(request: AttributeRequest):
    return explorer.attribute(request.code, request.amounts)

  @api.get("/api/map")
  def latent_map():
    return explorer.latent_map()

  def midi_response(data: bytes, name: str, extra: dict | None = None):
    filename = generate._safe(os.path.splitext(name)[0])[:100] or "musae"  # pylint: disable=protected-access
    headers = {"Content-Disposition": f'attachment; filename="{filename}.mid"'}
    headers.update(extra or {})
    return responses.Response(data, media_type="audio/midi", headers=headers)

  @api.post("/api/midi")
  def midi(request: MidiRequest):
    return midi_response(explorer.midi(request.tokens, request.programs, request.tempo_qpm),
                         request.name)

  @api.post("/api/whole_song")
  def whole_song(request: WholeSongRequest):
    data, count = explorer.whole_song(request)
    name = f"{os.path.splitext(os.path.basename(request.song))[0]}_whole_{request.mode}"
    return midi_response(data, name, {"X-Windows": str(count)})

  return _UploadLimit(api, MAX_UPLOAD_BYTES + 64 * 1024)  # Room for the form's own bytes.


# ---------------------------------------------------------------------------------------------
# Command line.

def define_flags() -> None:
  """The command-line flags (defined only when run as a program, so importing defines none)."""
  flags.DEFINE_string("workdir", None, "Training run directory (config.json, checkpoints/).")
  flags.DEFINE_string("midi_dir", None, "Folder of MIDI songs to pick from (default: the demo "
                      "songs of the repository, when present).")
  flags.DEFINE_integer("port", 8000, "Port to listen on.")
  flags.DEFINE_string("host", "127.0.0.1", "Address to bind; anything but 127.0.0.1 exposes "
                      "the server (and the songs of --midi_dir) to other machines.")


def serve(workdir: str, midi_dir: str | None, host: str, port: int) -> None:
  """Loads the run and serves the page until Ctrl-C."""
  import uvicorn  # pylint: disable=g-import-not-at-top
  if midi_dir is None and os.path.isdir(DEMO_MIDI_DIR):
    midi_dir = DEMO_MIDI_DIR
  if midi_dir is not None and not os.path.isdir(midi_dir):
    raise UserError(f"--midi_dir={midi_dir}: not a folder.")
  if not os.path.isfile(os.path.join(STATIC_DIR, "index.html")):
    raise UserError(f"{STATIC_DIR}: the page's files are missing (a broken install?).")
  if not 0 < port < 65536:
    raise UserError(f"--port={port} must be in 1-65535.")
  run = inference.load_run(workdir)
  with tempfile.TemporaryDirectory(prefix="musae_explore_uploads_") as upload_dir:
    explorer = Explorer(run, midi_dir, upload_dir)
    explorer.warm_up()  # Compile before the first visitor.
    if host not in LOCAL_HOSTS:
      print(f"warning: --host={host}: the explorer is reachable from other machines, and with "
            "it every song of --midi_dir and the model.", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"MusAE explorer for {workdir} (step {run.step}, {run.prior} prior); songs from "
          f"{midi_dir or 'uploads only'}.\nOpen http://{shown}:{port}/ (Ctrl-C stops it).",
          flush=True)
    uvicorn.run(create_app(explorer), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=5)


def main(argv):
  f = flags.FLAGS

  def body():
    try:
      serve(f.workdir, f.midi_dir, f.host, f.port)
    except OSError as e:  # e.g. the port is taken.
      raise UserError(f"cannot serve on {f.host}:{f.port}: {e.strerror or e}") from None

  cli.run_tool(argv, body)


def console_main() -> None:
  """The musae-explore console script."""
  define_flags()
  flags.mark_flags_as_required(["workdir"])
  app.run(main)


if __name__ == "__main__":
  console_main()
