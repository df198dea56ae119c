"""The latent explorer's JSON API (musae_jax.tools.explore) on the tiny trained run, through
Starlette's TestClient: results against the inference functions, path safety, uploads (every
file of the corpus's bad/ folder), bad input answered 4xx with one line, and concurrent clients.
"""

import concurrent.futures
import io
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pretty_midi
import pytest

from data_pipeline import midi_io
from data_pipeline import song as song_lib
from musae_common.errors import UserError
from musae_jax import priors
from musae_jax.tools import attributes as attributes_lib
from musae_jax.tools import explore
from musae_jax.tools import explorer_operations
from musae_jax.tools import generate
from musae_jax.tools import input_windows
from musae_jax.tools import request_batcher
from musae_jax.tools import runs
from tests import midi_checks

REPO = pathlib.Path(__file__).resolve().parents[1]
LONG_SONG = REPO / "demo_data" / "midi" / "miditok" / "Mr._Blue_Sky.mid"
ATTRIBUTE = "bass_note_density"


@pytest.fixture(scope="module")
def setup(trained_run, tmp_path_factory):
  """A copy of the trained run with an attribute vector, and a song folder holding the run's
  songs, a long song in a subfolder, a rejected file, and symbolic links that leave it."""
  root = tmp_path_factory.mktemp("explore")
  workdir = root / "run"
  shutil.copytree(trained_run.workdir, workdir)
  run = runs.load_run(str(workdir))
  vector = np.random.default_rng(0).normal(size=run.latent_size).astype(np.float32)
  attributes_lib.save(str(workdir), {ATTRIBUTE: vector}, {"vectors": {}})
  run = runs.load_run(str(workdir))
  midi_dir = root / "midi"
  (midi_dir / "sub").mkdir(parents=True)
  for song in trained_run.train_songs + trained_run.validation_songs:
    shutil.copy(song, midi_dir)
  shutil.copy(LONG_SONG, midi_dir / "sub" / "long.mid")
  (midi_dir / "not_midi.mid").write_text("this is not a MIDI file")
  outside = root / "outside"
  outside.mkdir()
  shutil.copy(trained_run.train_songs[0], outside / "secret.mid")
  (midi_dir / "escape.mid").symlink_to(outside / "secret.mid")
  (midi_dir / "linkdir").symlink_to(outside, target_is_directory=True)
  upload_dir = root / "uploads"
  upload_dir.mkdir()
  explorer = explorer_operations.Explorer(run, str(midi_dir), str(upload_dir))
  return {"run": run, "midi_dir": midi_dir, "explorer": explorer, "vector": vector,
          "train_songs": [os.path.basename(s) for s in trained_run.train_songs]}


@pytest.fixture(scope="module")
def client(setup):
  from fastapi.testclient import TestClient  # pylint: disable=g-import-not-at-top
  with TestClient(explore.create_app(setup["explorer"])) as test_client:
    yield test_client


def assert_refused(response, status=None):
  """A 4xx answer whose body is {"error": one line}, never a traceback."""
  assert 400 <= response.status_code < 500, (response.status_code, response.text)
  if status is not None:
    assert response.status_code == status, (response.status_code, response.text)
  message = response.json()["error"]
  assert message and "\n" not in message and "Traceback" not in message
  return message


def test_run_songs_and_page(client, setup):
  info = client.get("/api/run").json()
  run = setup["run"]
  assert (info["bars"], info["latent_size"], info["prior"]) == (run.bars, run.latent_size, "flower")
  assert [c["name"] for c in info["components"]] == run.genres + ["unlabeled"]
  assert info["attributes"] == [ATTRIBUTE]
  songs = [s["id"] for s in client.get("/api/songs").json()["songs"]]
  assert "sub/long.mid" in songs and setup["train_songs"][0] in songs
  page = client.get("/")
  assert page.status_code == 200 and "/static/explorer.js" in page.text
  assert page.headers["content-security-policy"] == "default-src 'self'"
  for asset in ("explorer.js", "style.css", "vendor/Tone.js", "vendor/Tone.js.LICENSE.md"):
    response = client.get(f"/static/{asset}")
    assert response.status_code == 200 and response.content, asset
    assert response.headers["content-security-policy"] == "default-src 'self'"
  # Nothing in the page refers to another host.
  for asset in ("index.html", "explorer.js", "style.css"):
    text = (pathlib.Path(explore.STATIC_DIR) / asset).read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", text), asset


def test_song_windows_and_rejection(client, setup):
  midi_dir = setup["midi_dir"]
  song = client.get("/api/song", params={"id": "sub/long.mid"}).json()
  windows = input_windows.song_windows(str(midi_dir / "sub" / "long.mid"), setup["run"].bars)
  assert song["start_bars"] == sorted(set(windows.start_bars.tolist()))
  assert song["valid_bars"] == input_windows.describe_bars(windows.start_bars)
  assert song["num_bars"] == windows.num_bars and song["programs"] == list(windows.programs)
  message = assert_refused(client.get("/api/song", params={"id": "not_midi.mid"}), 422)
  with pytest.raises(UserError) as cli:
    input_windows.song_windows(str(midi_dir / "not_midi.mid"), setup["run"].bars)
  assert message == str(cli.value).replace(str(midi_dir) + os.sep, "")
  # A start bar without a valid window: the CLI's message, with the valid bars.
  message = assert_refused(client.post("/api/encode", json={"song": "sub/long.mid",
                                                            "start_bar": 2000}), 422)
  assert "no valid 2-bar window starts at bar 2000" in message and song["valid_bars"] in message


def test_encode_decode_blend_match_the_inference_functions(client, setup):
  run = setup["run"]
  first, second = setup["train_songs"][:2]
  a = client.post("/api/encode", json={"song": first}).json()
  b = client.post("/api/encode", json={"song": second, "start_bar": -1}).json()
  window = input_windows.song_window(str(setup["midi_dir"] / first), run.bars)
  code = run.encode(window.tokens[None])
  assert a["input"] == window.tokens.astype(int).tolist()
  np.testing.assert_allclose(a["code"], code[0], rtol=1e-5, atol=1e-6)
  assert a["reconstruction"] == run.decode(code)[0].astype(int).tolist()
  decoded = client.post("/api/decode", json={"code": a["code"]}).json()
  assert decoded["tokens"] == a["reconstruction"]
  assert decoded["nearest_genre"] in run.genres + ["unlabeled"]
  # Blend: the corners are the codes themselves; the middle is their mean.
  for x, expected in ((0.0, a["code"]), (1.0, b["code"])):
    blend = client.post("/api/blend", json={"codes": [a["code"], b["code"]], "x": x}).json()
    np.testing.assert_allclose(blend["code"], expected, rtol=1e-6, atol=1e-6)
  codes = np.array([a["code"], b["code"], a["code"], b["code"]], np.float32)
  blend = client.post("/api/blend", json={"codes": codes.tolist(), "x": 0.25, "y": 0.5,
                                          "grid": 3}).json()
  np.testing.assert_allclose(blend["code"], 0.75 * codes[0] + 0.25 * codes[1], rtol=1e-5,
                             atol=1e-6)
  assert blend["tokens"] == run.decode(np.array([blend["code"]]))[0].astype(int).tolist()
  assert np.array(blend["grid"]).shape == (3, 3, run.num_steps, 4)
  assert np.array(blend["grid"])[0, 0].tolist() == a["reconstruction"]
  assert explorer_operations.bilinear_weights(3, 1.0, 1.0).sum() == pytest.approx(1.0)


def test_sample_transfer_attribute(client, setup):
  run = setup["run"]
  genre = run.genres[0]
  sample = client.post("/api/sample", json={"genre": genre, "temperature": 0.0}).json()
  np.testing.assert_allclose(sample["code"][:2], [1.0, 0.0], atol=1e-6)  # Component 0's mean.
  assert sample["component"] == 0 and sample["nearest_genre"] == genre
  seeded = client.post("/api/sample", json={"component": 1, "temperature": 0.7, "seed": 3}).json()
  np.testing.assert_allclose(seeded["code"], runs.prior_codes(run, 3, 1, 1, 0.7)[0],
                             rtol=1e-6)
  code = client.post("/api/encode", json={"song": setup["train_songs"][0]}).json()["code"]
  target = len(run.genres)  # The unlabeled component.
  moved = client.post("/api/transfer", json={"code": code, "component": target}).json()
  source = int(priors.nearest_component(np.array([code]), run.num_components)[0])
  expected = priors.move_to_component(np.array([code]), source, target, run.num_components)
  np.testing.assert_allclose(moved["code"], expected[0], rtol=1e-5, atol=1e-6)
  assert (moved["source"], moved["target"], moved["target_genre"]) == (source, target, "unlabeled")
  assert moved["tokens"] == run.decode(expected)[0].astype(int).tolist()
  edited = client.post("/api/attribute", json={"code": code, "amounts": {ATTRIBUTE: 1.5}}).json()
  np.testing.assert_allclose(edited["code"], np.array(code) + 1.5 * setup["vector"], rtol=1e-5,
                             atol=1e-5)
  assert "unknown" in assert_refused(client.post(
      "/api/attribute", json={"code": code, "amounts": {"drums_loudness": 1.0}}), 422)
  assert "not in the run's vocabulary" in assert_refused(client.post(
      "/api/sample", json={"genre": "no such genre"}), 422)
  assert "out of range" in assert_refused(client.post(
      "/api/transfer", json={"code": code, "component": run.num_components}), 422)


def test_midi_export_is_generates_writer(client, setup):
  song = client.post("/api/encode", json={"song": "sub/long.mid", "start_bar": -1}).json()
  body = {"tokens": song["reconstruction"], "programs": song["programs"],
          "tempo_qpm": song["tempo_qpm"]}
  response = client.post("/api/midi", json=body)
  assert response.status_code == 200 and response.headers["content-type"] == "audio/midi"
  tokens = np.array(song["reconstruction"], np.uint8)
  assert response.content == midi_io.midi_bytes(tokens, song["programs"], song["tempo_qpm"])
  midi_checks.assert_one_named_track_per_token_track(response.content)
  midi = pretty_midi.PrettyMIDI(io.BytesIO(response.content))
  assert midi.estimate_tempo() > 0


def test_whole_song_api_and_cli(client, setup, tmp_path):
  run = setup["run"]
  response = client.post("/api/whole_song", json={"song": "sub/long.mid", "mode": "transfer",
                                                  "genre": run.genres[0]})
  assert response.status_code == 200, response.text
  programs, song_tokens = song_lib.song_tokens(str(setup["midi_dir"] / "sub" / "long.mid"))[0]
  windows = -(-len(song_tokens) // run.num_steps)
  assert int(response.headers["x-windows"]) == windows > 10
  restyled = midi_io.read_midi(response.content)
  original = midi_io.read_midi(LONG_SONG.read_bytes())
  assert restyled.tempo_qpm == pytest.approx(original.tempo_qpm, rel=1e-3)
  assert sorted(i.program for i in restyled.instruments if not i.is_drum) == sorted(programs[1:])
  # The same restyle as the CLI's --whole_song, stitched to the song's length.
  outputs = generate.generate(str(setup["run"].workdir), "transfer", str(tmp_path),
                              input=str(setup["midi_dir"] / "sub" / "long.mid"),
                              genre=run.genres[0], whole_song=True)
  with open(outputs[0].paths[0], "rb") as f:
    assert f.read() == response.content
  assert outputs[0].tokens.shape == song_tokens.shape
  code = client.post("/api/encode", json={"song": setup["train_songs"][0]}).json()["code"]
  for body in ({"mode": "reconstruct"}, {"mode": "attribute", "amounts": {ATTRIBUTE: -1}},
               {"mode": "blend", "code": code, "alpha": 0.3}):
    response = client.post("/api/whole_song", json={"song": "sub/long.mid", **body})
    assert response.status_code == 200 and midi_io.read_midi(response.content).instruments
  assert_refused(client.post("/api/whole_song", json={"song": "sub/long.mid", "mode": "blend"}))
  assert_refused(client.post("/api/whole_song", json={"song": "not_midi.mid"}), 422)
  with pytest.raises(UserError, match="--whole_song works with"):
    generate.generate(str(setup["run"].workdir), "sample", str(tmp_path), whole_song=True)


@pytest.mark.parametrize("song_id, status", [
    ("../secret.mid", 400), ("../../etc/passwd", 400), ("sub/../../outside/secret.mid", 400),
    ("/etc/passwd", 400), (str(REPO / "README.md"), 400), ("..%2Foutside%2Fsecret.mid", 400),
    ("sub%2Flong.mid", 400), ("%2e%2e/outside/secret.mid", 400), ("sub\\..\\..\\x.mid", 400),
    ("C:/windows/win.ini", 400), ("./sub/long.mid", 400), ("sub//long.mid", 400),
    ("escape.mid", 403), ("linkdir/secret.mid", 403), ("missing.mid", 404),
    ("sub/missing.mid", 404), ("upload/0123456789abcdef/x.mid", 404)])
def test_path_safety(client, song_id, status):
  assert_refused(client.get("/api/song", params={"id": song_id}), status)
  assert_refused(client.post("/api/encode", json={"song": song_id}), status)
  assert_refused(client.post("/api/whole_song", json={"song": song_id}), status)


def test_path_safety_raw_urls(client):
  """Encoded separators in the URL itself (decoded once by the server: still refused)."""
  for url in ("/api/song?id=..%2F..%2Fetc%2Fpasswd", "/api/song?id=%2Fetc%2Fpasswd",
              "/api/song?id=sub%252F..%252F..%252Fx.mid", "/api/song?id=escape.mid%00.mid"):
    assert_refused(client.get(url))
  source = (pathlib.Path(explore.__file__)).read_text()[:200]
  for url in ("/static/../explore.py", "/static/%2e%2e/explore.py", "/static/..%2Fexplore.py",
              "/static/vendor/../../explore.py", "/static/%2Fetc%2Fpasswd",
              "/static//etc/passwd", "/static/..%5Cexplore.py", "/static/"):
    response = client.get(url)
    assert response.status_code == 404, (url, response.status_code)
    assert source not in response.text


def test_uploads(client, setup):
  song = setup["midi_dir"] / "sub" / "long.mid"
  response = client.post("/api/upload", files={"file": ("my song.mid", song.read_bytes(),
                                                        "audio/midi")})
  assert response.status_code == 200, response.text
  uploaded = response.json()
  assert uploaded["id"].startswith("upload/") and uploaded["name"] == "my_song.mid"
  start_bar = uploaded["start_bars"][1]
  encoded = client.post("/api/encode", json={"song": uploaded["id"], "start_bar": start_bar})
  assert encoded.json()["start_bar"] == start_bar, encoded.text
  too_big = b"MThd" + bytes(explorer_operations.MAX_UPLOAD_BYTES + 10)
  assert "limit" in assert_refused(
      client.post("/api/upload", files={"file": ("big.mid", too_big, "audio/midi")}), 413)
  assert_refused(client.post("/api/upload", files={"other": ("x.mid", b"MThd", "audio/midi")}),
                 400)
  assert_refused(client.post("/api/upload", content=b"not a form",
                             headers={"content-type": "application/octet-stream"}), 400)
  assert "rejected" in assert_refused(
      client.post("/api/upload", files={"file": ("empty.mid", b"", "audio/midi")}), 422)


def test_every_bad_corpus_file_gets_the_cli_reason(client, setup, shared_data):
  files = sorted((shared_data / "bad").glob("*/*.mid"))
  assert files
  for path in files:
    response = client.post("/api/upload", files={"file": (path.name, path.read_bytes(),
                                                          "audio/midi")})
    try:
      input_windows.song_windows(str(path), setup["run"].bars)
    except UserError as cli:
      message = assert_refused(response, 422)
      assert message == str(cli).replace(str(path), path.name), path
    else:  # A file the filters accept (e.g. edge/: no time signature = 4/4) is served.
      assert response.status_code == 200, (path, response.text)
  assert client.get("/api/run").status_code == 200  # Still serving.


@pytest.mark.parametrize("path, body", [
    ("/api/decode", "{not json"), ("/api/decode", ""), ("/api/decode", "[1, 2]"),
    ("/api/decode", '{"code": "zeros"}'), ("/api/decode", '{"code": [1, 2, 3]}'),
    ("/api/decode", '{"code": [NaN, 0]}'), ("/api/decode", '{"code": [1e400]}'),
    ("/api/decode", '{"code": [1e9]}'), ("/api/decode", '{"code": [], "extra": 1}'),
    ("/api/blend", '{"codes": [[0]]}'), ("/api/blend", '{"codes": [[0], [0]], "x": 1.5}'),
    ("/api/blend", '{"codes": [[0], [0], [0], [0], [0]]}'), ("/api/sample", '{"temperature": -1}'),
    ("/api/sample", '{"temperature": 99}'), ("/api/sample", '{"seed": -5}'),
    ("/api/sample", '{"component": 1e12}'), ("/api/sample", '{"genre": 3}'),
    ("/api/encode", '{"song": "sub/long.mid", "start_bar": 1e9}'), ("/api/encode", '{}'),
    ("/api/encode", '{"song": ""}'), ("/api/attribute", '{"code": [0], "amounts": {"x": 1e6}}'),
    ("/api/midi", '{"tokens": [[0, 1, 2]]}'), ("/api/midi", '{"tokens": [[0, 1, 2, 300]]}'),
    ("/api/midi", '{"tokens": [[0, 1, 2, 3]], "tempo_qpm": 0}'), ("/api/midi", '{"tokens": []}'),
    ("/api/whole_song", '{"song": "sub/long.mid", "mode": "explode"}'),
    ("/api/whole_song", '{"song": "sub/long.mid", "mode": "transfer", "genre": "nope"}'),
    ("/api/whole_song", '{"song": "sub/long.mid", "mode": "attribute"}'),
])
def test_bad_input_gets_4xx(client, path, body):
  assert_refused(client.post(path, content=body, headers={"content-type": "application/json"}))


def test_wrong_sizes_and_methods(client, setup):
  run = setup["run"]
  assert "expected 32 numbers" in assert_refused(
      client.post("/api/decode", json={"code": [0.0] * (run.latent_size + 1)}), 422)
  assert_refused(client.get("/api/decode"), 405)
  assert_refused(client.get("/api/nothing"), 404)
  assert_refused(client.get("/api/song"), 400)
  too_long = "x" * (explorer_operations.MAX_UPLOAD_BYTES + 70_000)
  assert_refused(client.post("/api/decode", content=too_long,
                             headers={"content-type": "application/json"}), 413)


def test_concurrent_clients(client, setup):
  """8 clients x 50 requests of mixed kinds: no error, and every answer as when sequential."""
  first, second = setup["train_songs"][:2]
  a = client.post("/api/encode", json={"song": first}).json()
  b = client.post("/api/encode", json={"song": second}).json()
  requests = [("post", "/api/decode", {"code": a["code"]}),
              ("post", "/api/blend", {"codes": [a["code"], b["code"]], "x": 0.3, "y": 0.9}),
              ("post", "/api/sample", {"component": 0, "temperature": 0.5, "seed": 7}),
              ("get", "/api/song?id=sub%2Flong.mid", None),
              ("post", "/api/encode", {"song": second})]
  expected = [client.request(m.upper(), u, json=j).json() for m, u, j in requests]

  def one_client(index):
    for i in range(50):
      kind = (index + i) % len(requests)
      method, url, body = requests[kind]
      response = client.request(method.upper(), url, json=body)
      assert response.status_code == 200, response.text
      assert response.json() == expected[kind]
    return True

  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    assert all(pool.map(one_client, range(8), timeout=300))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_command_line_server(setup):
  """The real command: serves the page with its CSP header, warns when not bound to
  127.0.0.1, stops cleanly on Ctrl-C; a bad workdir is one line."""
  port = _free_port()
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  process = subprocess.Popen(
      [sys.executable, "-m", "musae_jax.tools.explore", f"--workdir={setup['run'].workdir}",
       f"--midi_dir={setup['midi_dir']}", f"--port={port}", "--host=127.0.0.2"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
  try:
    url = f"http://127.0.0.2:{port}/"
    deadline = time.time() + 180
    while True:
      try:
        with urllib.request.urlopen(url, timeout=5) as response:
          assert response.headers["Content-Security-Policy"] == "default-src 'self'"
          assert b"MusAE latent explorer" in response.read()
        break
      except OSError:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "the server did not start"
        time.sleep(0.5)
    with urllib.request.urlopen(url + "api/songs", timeout=30) as response:
      assert "sub/long.mid" in [s["id"] for s in json.load(response)["songs"]]
  finally:
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
  assert process.returncode == 0, stderr
  assert url in stdout
  assert "warning: --host=127.0.0.2" in stderr and "Traceback" not in stderr
  bad = subprocess.run([sys.executable, "-m", "musae_jax.tools.explore",
                        f"--workdir={setup['midi_dir']}"], capture_output=True, text=True,
                       cwd=REPO, timeout=180, check=False)
  assert bad.returncode == 2 and bad.stderr.startswith("error: ")
  assert "Traceback" not in bad.stderr


def test_batcher_hands_each_caller_its_rows():
  calls = []

  def double(rows):
    calls.append(len(rows))
    time.sleep(0.01)
    if (rows < 0).any():
      raise ValueError("negative")
    return rows * 2

  batcher = request_batcher.RequestBatcher(double, max_rows=6)
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    results = list(pool.map(lambda i: batcher(np.full((1 + i % 3, 2), i)), range(40)))
  for i, result in enumerate(results):
    np.testing.assert_array_equal(result, np.full((1 + i % 3, 2), 2 * i))
  assert sum(calls) == sum(1 + i % 3 for i in range(40)) and max(calls) <= 6
  assert len(calls) < 40  # Concurrent requests were batched.
  with pytest.raises(ValueError, match="negative"):
    batcher(np.full((1, 2), -1))
  np.testing.assert_array_equal(batcher(np.ones((1, 2))), 2 * np.ones((1, 2)))


def test_gaussian_run_gets_a_pca_map_and_clear_genre_errors(setup, tmp_path):
  """A Gaussian-prior run (random parameters: only shapes matter here): the map is the PCA of
  the songs' codes, sampling works without a genre, and genre requests are refused in one line."""
  from fastapi.testclient import TestClient  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from configs import demo  # pylint: disable=g-import-not-at-top
  from musae_jax.model import MusAE  # pylint: disable=g-import-not-at-top
  config = demo.get_config()
  config.model.prior = "gaussian"
  config.model.hidden_size, config.model.latent_size = 16, 8
  graphdef, params = nnx.split(MusAE(config.model, 0, rngs=nnx.Rngs(params=0)), nnx.Param)
  run = runs.Run(str(tmp_path), config, [], 0, graphdef, params)
  explorer = explorer_operations.Explorer(run, str(setup["midi_dir"]), str(tmp_path))
  with TestClient(explore.create_app(explorer)) as client:
    info = client.get("/api/run").json()
    assert info["prior"] == "gaussian" and info["components"] == [] and info["attributes"] == []
    latent_map = client.get("/api/map").json()
    assert latent_map["kind"] == "pca" and np.array(latent_map["basis"]).shape == (2, 8)
    basis = np.array(latent_map["basis"])
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-5)
    assert {p["song"] for p in latent_map["points"]} >= {"sub/long.mid", *setup["train_songs"]}
    sample = client.post("/api/sample", json={"temperature": 0.0}).json()
    np.testing.assert_allclose(sample["code"], np.zeros(8), atol=1e-7)
    assert "nearest_genre" not in sample
    code = sample["code"]
    for path, body in (("/api/sample", {"genre": "rock"}), ("/api/sample", {"component": 0}),
                       ("/api/transfer", {"code": code, "component": 0}),
                       ("/api/whole_song", {"song": "sub/long.mid", "mode": "transfer",
                                            "genre": "rock"})):
      assert "gaussian prior" in assert_refused(client.post(path, json=body), 422)
    assert "none: run python -m musae_jax.tools.attributes" in assert_refused(
        client.post("/api/attribute", json={"code": code, "amounts": {ATTRIBUTE: 1}}), 422)
