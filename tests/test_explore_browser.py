"""The latent explorer in a real browser: headless Chromium (the system's, Debian package
`chromium`) driven by Playwright for Python, on the tiny trained run.

Skipped, with the reason, only where no Chromium executable is found ($MUSAE_CHROMIUM, then
`chromium` / `chromium-browser` on PATH). Set $MUSAE_EXPLORER_SCREENSHOT=FILE.png to keep a
screenshot of the page at the end.
"""

import io
import math
import os
import pathlib
import shutil
import socket
import threading
import time

import pretty_midi
import pytest

from data_pipeline import song as song_lib
from musae_jax.tools import attributes as attributes_lib
from musae_jax.tools import explore
from musae_jax.tools import explorer_operations
from musae_jax.tools import input_windows
from musae_jax.tools import runs
from tests import midi_checks

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMO_MIDI = REPO / "demo_data" / "midi"
LONG_SONG = DEMO_MIDI / "miditok" / "Mr._Blue_Sky.mid"  # A good upload, many windows long.

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--mute-audio"]


def wait_until(page, expression: str, timeout_s: float = 60.0) -> None:
  """Polls a JavaScript expression until it is truthy (page.wait_for_function evaluates its
  predicate with eval, which the page's Content-Security-Policy refuses)."""
  deadline = time.time() + timeout_s
  while not page.evaluate(expression):
    assert time.time() < deadline, f"timed out waiting for: {expression}"
    page.wait_for_timeout(50)


def chromium_executable() -> str | None:
  candidates = [os.environ.get("MUSAE_CHROMIUM"), shutil.which("chromium"),
                shutil.which("chromium-browser"), "/usr/bin/chromium"]
  return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
  """The explorer on a copy of the tiny run with attribute vectors (computed as the README
  does: python -m musae_jax.tools.attributes --workdir=RUN --midi_dir=demo_data/midi), served by
  uvicorn in a thread; yields its URL, the run and the attributes' summary."""
  import uvicorn  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp("browser_run") / "run"
  shutil.copytree(trained_run.workdir, workdir)  # The shared run stays without vectors.
  run = runs.load_run(str(workdir))
  windows = input_windows.run_windows(run, midi_dir=str(DEMO_MIDI), max_windows=1024)
  summary = attributes_lib.compute_and_save(run, windows, check_windows=0)
  assert summary["vectors"], "no attribute vector computed"
  explorer = explorer_operations.Explorer(run, trained_run.midi_dir,
                                          str(tmp_path_factory.mktemp("uploads")))
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  config = uvicorn.Config(explore.create_app(explorer), host="127.0.0.1", port=port,
                          log_level="warning")
  uvicorn_server = uvicorn.Server(config)
  thread = threading.Thread(target=uvicorn_server.run, daemon=True)
  thread.start()
  deadline = time.time() + 60
  while not uvicorn_server.started:
    assert thread.is_alive() and time.time() < deadline, "the server did not start"
    time.sleep(0.05)
  yield f"http://127.0.0.1:{port}", run, summary
  uvicorn_server.should_exit = True
  thread.join(timeout=30)


def test_explorer_in_chromium(server, tmp_path):
  executable = chromium_executable()
  if executable is None:
    pytest.skip("no Chromium executable found (install the Debian package: apt-get install "
                "chromium, or set MUSAE_CHROMIUM)")
  from playwright.sync_api import sync_playwright  # pylint: disable=g-import-not-at-top
  base, run, attribute_summary = server
  foreign, page_errors, console_errors = [], [], []

  def route(route_):
    url = route_.request.url
    if url.startswith(base + "/") or url.startswith("blob:" + base) or url.startswith("data:"):
      route_.continue_()
    else:
      foreign.append(url)
      route_.abort()

  with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
    try:
      context = browser.new_context(accept_downloads=True, viewport={"width": 1500, "height": 950})
      context.route("**/*", route)
      page = context.new_page()
      page.on("request", lambda r: None if r.url.startswith((base + "/", "blob:", "data:"))
              else foreign.append(r.url))
      page.on("pageerror", lambda e: page_errors.append(str(e)))
      page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
      page.set_default_timeout(60_000)
      page.goto(base + "/")
      page.wait_for_selector("body[data-ready=true]")

      # Two songs at corners A and B: each is encoded and drawn.
      songs = page.eval_on_selector_all("#song-0 option", "os => os.map(o => o.value)")[1:]
      assert len(songs) >= 2
      for corner, song in enumerate(songs[:2]):
        decodes = page.evaluate("window.musaeExplorer.decodes")
        page.select_option(f"#song-{corner}", song)
        wait_until(page, f"window.musaeExplorer.decodes > {decodes}")
        wait_until(page, f"document.getElementById('bar-{corner}').options.length > 0")
      assert "blend" not in page.inner_text("#current-caption")

      # Drag the puck from the middle to the left edge: the current pianoroll changes.
      roll = lambda: page.evaluate("document.getElementById('roll-current').toDataURL()")
      before, decodes = roll(), page.evaluate("window.musaeExplorer.decodes")
      box = page.locator("#pad").bounding_box()
      page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
      page.mouse.down()
      page.mouse.move(box["x"] + 3, box["y"] + box["height"] / 2, steps=15)
      page.mouse.up()
      wait_until(page, f"window.musaeExplorer.decodes > {decodes}")
      wait_until(page, "document.getElementById('busy').hidden")
      assert "blend at (0.00, 0.50)" in page.inner_text("#current-caption")
      assert roll() != before

      # Play: notes are scheduled on the Tone.js transport, then stop.
      page.click("#play")
      wait_until(page, "window.musaeExplorer.notesScheduled > 4")
      page.click("#stop")

      # Click the first petal of the genre flower: a sample of that genre is decoded.
      decodes = page.evaluate("window.musaeExplorer.decodes")
      box = page.locator("#flower").bounding_box()
      page.mouse.click(box["x"] + box["width"] * (0.5 + 0.5 / 1.35),
                       box["y"] + box["height"] / 2)
      wait_until(page, f"window.musaeExplorer.decodes > {decodes}")
      assert f"sample of {run.genres[0]}" in page.inner_text("#current-caption")

      # Download the current window: a MIDI file of 4 tracks.
      with page.expect_download() as download:
        page.click("#download")
      path = tmp_path / "download.mid"
      download.value.save_as(path)
      midi_checks.assert_one_named_track_per_token_track(path.read_bytes())

      # A rejected upload shows the server's one-line reason.
      page.set_input_files("#upload", files=[{"name": "bad.mid", "mimeType": "audio/midi",
                                              "buffer": b"not a MIDI file"}])
      wait_until(page, "document.getElementById('message').textContent.includes('rejected')")

      state = "window.musaeExplorer.state"
      code = lambda: page.evaluate(f"{state}.current.code")
      tokens = lambda: page.evaluate(f"{state}.current.tokens")

      # Transfer: drag the current code (the yellow point, a sample of the first genre) onto
      # the petal farthest from it; the code moves to that genre and is decoded.
      flower = page.locator("#flower")
      box = flower.bounding_box()
      scale = box["width"] / page.evaluate("document.getElementById('flower').width")
      canvas_size = page.evaluate("document.getElementById('flower').width")
      # The page seeds its samples at random, and a sample can project outside the drawn map
      # (radius 1.35): then nothing can be dragged, so the petal is clicked again, as a user would.
      for _ in range(20):
        point = page.evaluate(f"project({state}.current.code)")
        start = page.evaluate(f"toCanvas({point[0]}, {point[1]})")
        if all(0 <= v <= canvas_size for v in start):
          break
        decodes = page.evaluate("window.musaeExplorer.decodes")
        page.mouse.click(box["x"] + box["width"] * (0.5 + 0.5 / 1.35), box["y"] + box["height"] / 2)
        wait_until(page, f"window.musaeExplorer.decodes > {decodes}")
      assert all(0 <= v <= canvas_size for v in start), f"the current code is off the map: {point}"
      assert f"sample of {run.genres[0]}" in page.inner_text("#current-caption")
      components = page.evaluate(f"{state}.map.components")
      target = max(components, key=lambda c: (point[0] - math.cos(c["angle"])) ** 2 +
                   (point[1] - math.sin(c["angle"])) ** 2)
      end = page.evaluate(f"toCanvas(Math.cos({target['angle']}), Math.sin({target['angle']}))")
      before, before_code = roll(), code()
      decodes = page.evaluate("window.musaeExplorer.decodes")
      page.mouse.move(box["x"] + start[0] * scale, box["y"] + start[1] * scale)
      page.mouse.down()
      page.mouse.move(box["x"] + end[0] * scale, box["y"] + end[1] * scale, steps=15)
      page.mouse.up()
      wait_until(page, f"window.musaeExplorer.decodes > {decodes}")
      wait_until(page, "document.getElementById('busy').hidden")
      caption = page.inner_text("#current-caption")
      assert caption.startswith("moved from ") and f" to {target['name']}" in caption, caption
      assert code() != before_code
      assert roll() != before

      # An attribute slider: the strongest vector at its maximum; the decoded window changes.
      name = max(attribute_summary["vectors"],
                 key=lambda n: attribute_summary["vectors"][n]["norm"])
      slider = page.locator("#attributes label", has_text=name).locator("input[type=range]")
      before, before_tokens = roll(), tokens()
      decodes = page.evaluate("window.musaeExplorer.decodes")
      slider.focus()
      page.keyboard.press("End")
      wait_until(page, f"window.musaeExplorer.decodes > {decodes}")
      wait_until(page, "document.getElementById('busy').hidden")
      assert slider.input_value() == "3"
      assert f"with attributes +3 {name}" in page.inner_text("#current-caption")
      assert tokens() != before_tokens
      assert roll() != before

      # A good upload: it lands in the first free corner, which lists the song's start bars.
      expected_bars = sorted({int(b) for b in song_lib.extract_windows(
          str(LONG_SONG), run.bars).start_bars})
      assert len(expected_bars) > 1
      page.set_input_files("#upload", str(LONG_SONG))
      wait_until(page, "document.getElementById('message').textContent.includes('uploaded')")
      wait_until(page, "document.getElementById('busy').hidden")
      message = page.inner_text("#message")
      assert f"{LONG_SONG.name}: uploaded into corner C" in message, message
      uploaded = page.input_value("#song-2")
      assert uploaded
      shown_bars = page.eval_on_selector_all("#bar-2 option", "os => os.map(o => Number(o.value))")
      assert shown_bars == expected_bars
      assert (f"windows start at bars {input_windows.describe_bars(expected_bars)}"
              in page.inner_text("#status-2"))

      # The whole-song panel: the uploaded song in corner A, restyled with the attribute
      # sliders; the download is one MIDI file longer than one window.
      decodes = page.evaluate("window.musaeExplorer.decodes")
      page.select_option("#song-0", uploaded)
      wait_until(page, f"window.musaeExplorer.decodes > {decodes}")
      wait_until(page, "document.getElementById('busy').hidden")
      page.select_option("#whole-mode", "attribute")
      with page.expect_download() as download:
        page.click("#whole-go")
      assert download.value.suggested_filename.endswith("_whole_attribute.mid")
      path = tmp_path / "whole.mid"
      download.value.save_as(path)
      wait_until(page, "document.getElementById('message').textContent.includes('restyled')")
      midi_checks.assert_one_named_track_per_token_track(path.read_bytes())
      midi = pretty_midi.PrettyMIDI(io.BytesIO(path.read_bytes()))
      tempo = midi.get_tempo_changes()[1][0]
      window_seconds = run.bars * 4 * 60.0 / tempo
      assert midi.get_end_time() > 1.5 * window_seconds, (midi.get_end_time(), window_seconds)

      screenshot = os.environ.get("MUSAE_EXPLORER_SCREENSHOT")
      if screenshot:
        page.screenshot(path=screenshot, full_page=True)
    finally:
      browser.close()
  assert not foreign, f"the page requested other hosts: {foreign}"
  assert not page_errors, page_errors
  # The rejected upload's 422 is the only expected console error (the browser logs it).
  unexpected = [m for m in console_errors if "422" not in m]
  assert not unexpected, unexpected
