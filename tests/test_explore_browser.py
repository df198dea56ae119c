"""The latent explorer in a real browser: headless Chromium (the system's, Debian package
`chromium`) driven by Playwright for Python, on the tiny trained run.

Skipped, with the reason, only where no Chromium executable is found ($MUSAE_CHROMIUM, then
`chromium` / `chromium-browser` on PATH). Set $MUSAE_EXPLORER_SCREENSHOT=FILE.png to keep a
screenshot of the page at the end.
"""

import io
import os
import shutil
import socket
import threading
import time

import pretty_midi
import pytest

from musae_jax import explore
from musae_jax import inference

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
  """The explorer on the tiny run, served by uvicorn in a thread; yields its URL."""
  import uvicorn  # pylint: disable=g-import-not-at-top
  run = inference.load_run(trained_run.workdir)
  explorer = explore.Explorer(run, trained_run.midi_dir, str(tmp_path_factory.mktemp("uploads")))
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
  yield f"http://127.0.0.1:{port}", run
  uvicorn_server.should_exit = True
  thread.join(timeout=30)


def test_explorer_in_chromium(server, tmp_path):
  executable = chromium_executable()
  if executable is None:
    pytest.skip("no Chromium executable found (install the Debian package: apt-get install "
                "chromium, or set MUSAE_CHROMIUM)")
  from playwright.sync_api import sync_playwright  # pylint: disable=g-import-not-at-top
  base, run = server
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
      midi = pretty_midi.PrettyMIDI(io.BytesIO(path.read_bytes()))
      assert [i.is_drum for i in midi.instruments] == [True, False, False, False]

      # A rejected upload shows the server's one-line reason.
      page.set_input_files("#upload", files=[{"name": "bad.mid", "mimeType": "audio/midi",
                                              "buffer": b"not a MIDI file"}])
      wait_until(page, "document.getElementById('message').textContent.includes('rejected')")

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
