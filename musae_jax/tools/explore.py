r"""The latent explorer: a local web page to blend songs, move them around the genre flower,
listen to them and download them, over a JSON API that scripts can use too.

  python -m musae_jax.tools.explore --workdir=RUN [--midi_dir=DIR] [--port=8000] [--host=127.0.0.1]

The run is loaded once (parameters only, like the other tools). The page and its assets ship in
musae_jax/tools/explorer_static/ (the synth, Tone.js, vendored with its license); nothing is fetched
from another host (Content-Security-Policy: default-src 'self'). Songs come from --midi_dir (the
demo songs by default) or are uploaded (at most MAX_UPLOAD_BYTES). No file outside --midi_dir,
the uploads and the static folder is ever read: song ids are checked ("..", absolute paths,
encoded separators, symbolic links that leave the folder are refused) and static files are
served from a fixed list read at start-up. Every bad input gets a 4xx answer with a one-line
{"error": ...}; the encode/decode calls reuse musae_jax.tools.runs and musae_jax.tools.generate.

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
import json
import mimetypes
import os
import sys
import tempfile
from typing import Annotated, Literal

from absl import flags
import pydantic
from starlette.exceptions import HTTPException

from data_pipeline import song as song_lib
from data_pipeline.tokens import HOLD, NUM_TRACKS, STEPS_PER_BAR
from musae_common import cli
from musae_common.errors import UserError
from musae_jax.tools import generate
from musae_jax.tools import runs
from musae_jax.tools.explorer_operations import ApiError, Explorer, MAX_CODE_VALUE, MAX_UPLOAD_BYTES

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explorer_static")
# The demo songs of a checkout (musae_jax/tools/ -> the repository root).
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_MIDI_DIR = os.path.join(_REPOSITORY, "demo_data", "midi")
CONTENT_SECURITY_POLICY = "default-src 'self'"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


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
    return error(422, explorer.public_message(str(exc)))

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
    filename = generate.safe_file_name(os.path.splitext(name)[0])[:100] or "musae"
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
  run = runs.load_run(workdir)
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
  cli.run_console(main, __name__, define_flags, ["workdir"])


if __name__ == "__main__":
  console_main()
