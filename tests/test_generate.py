"""The generate tool on a run trained in this session: files, faithfulness, geometry, errors."""

import os
import shutil
import subprocess
import sys

from flax import nnx
import jax.numpy as jnp
import numpy as np
import pretty_midi
import pytest

from data_pipeline import midi_io
from data_pipeline import song
from data_pipeline.tokens import TRACKS
from musae_common.errors import UserError
from musae_jax import priors
from musae_jax.tools import generate
from musae_jax.tools import input_windows
from musae_jax.tools import runs
from tests.conftest_run import DEMO_MIDI, REPO

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(trained_run):  # pylint: disable=redefined-outer-name
  return runs.load_run(trained_run.workdir)


def _is_png(path):
  with open(path, "rb") as f:
    return f.read(8) == PNG_SIGNATURE


def _reconstruction_accuracy(run, path, out_dir):
  source = song.extract_windows(path, 2)
  given, rebuilt = generate.reconstruct(run, path, out_dir)
  np.testing.assert_array_equal(given.tokens, source.tokens[0])  # The song's first window.
  assert given.name.endswith("_bar0_input") and rebuilt.name.endswith("_bar0_reconstruction")
  return float((rebuilt.tokens == given.tokens).mean())


def test_reconstruct_returns_the_overfit_training_windows(run, trained_run, tmp_path):
  # The fixture memorises two windows to about 96% of their tokens in its short training
  # (exact recall takes thousands of steps); an unseen window is reconstructed far worse.
  train = [_reconstruction_accuracy(run, p, str(tmp_path)) for p in trained_run.train_songs]
  held_out = [_reconstruction_accuracy(run, p, str(tmp_path))
              for p in trained_run.validation_songs]
  assert min(train) >= 0.9, (train, held_out)
  assert min(train) > max(held_out) + 0.1, (train, held_out)


def _check_midi(path, programs, tempo_qpm):
  """The file parses; its tracks carry their names, programs and the tempo (pretty_midi leaves
  out a track without notes, which a decoded window may have)."""
  midi = pretty_midi.PrettyMIDI(path)
  assert midi.get_tempo_changes()[1][0] == pytest.approx(tempo_qpm, rel=1e-3)
  for instrument in midi.instruments:
    track = TRACKS.index(instrument.name)
    assert instrument.is_drum == (track == 0)
    if track:
      assert instrument.program == programs[track]


def test_every_mode_writes_playable_midi_and_pngs(run, trained_run, tmp_path):
  first, second = trained_run.train_songs[:2]
  window = input_windows.song_window(first, 2)
  genre, other = run.genres[0], run.genres[1]
  results = {
      "reconstruct": generate.reconstruct(run, first, str(tmp_path / "r")),
      "interpolate": generate.interpolate(run, first, second, str(tmp_path / "i"), 3),
      "transfer": generate.transfer(run, first, str(tmp_path / "t"), other),
  }
  samples = generate.sample(run, str(tmp_path / "s"), 3, genre, temperature=0.5)
  for mode, outputs in results.items():
    midi_files = [o.paths[0] for o in outputs if o.paths[0].endswith(".mid")]
    assert len(midi_files) == {"reconstruct": 2, "interpolate": 3, "transfer": 3}[mode]
    for output in outputs:
      assert all(os.path.exists(p) for p in output.paths)
      assert _is_png(output.paths[-1])
    for path in midi_files:
      _check_midi(path, window.programs, window.tempo_qpm)
  assert results["interpolate"][-1].paths[0].endswith("_grid.png")
  assert len(samples) == 3 and all(o.paths[0].endswith(".mid") for o in samples)
  for output in samples:
    _check_midi(output.paths[0], generate.DEFAULT_PROGRAMS, generate.DEFAULT_TEMPO_QPM)
    assert _is_png(output.paths[1])
  assert os.path.basename(samples[0].paths[0]) == f"sample_{genre}_seed0_t0.5_00.mid"


def test_interpolation_ends_are_the_two_reconstructions(run, trained_run, tmp_path):
  first, second = trained_run.train_songs[:2]
  start = generate.reconstruct(run, first, str(tmp_path))[1].tokens
  end = generate.reconstruct(run, second, str(tmp_path))[1].tokens
  for spherical in (False, True):
    outputs = generate.interpolate(run, first, second, str(tmp_path), 3, spherical=spherical)
    windows = [o for o in outputs if o.paths[0].endswith(".mid")]
    assert len(windows) == 3
    np.testing.assert_array_equal(windows[0].tokens, start)
    np.testing.assert_array_equal(windows[-1].tokens, end)
    np.testing.assert_array_equal(outputs[-1].tokens, np.stack([w.tokens for w in windows]))


def test_transfer_moves_the_code_into_the_target_genres_component(run, trained_run, tmp_path):
  window = input_windows.song_window(trained_run.train_songs[0], 2)
  code = run.encode(window.tokens[None])
  source = int(priors.nearest_component(code, run.num_components)[0])
  for target, genre in enumerate(run.genres):
    moved = priors.move_to_component(code, source, target, run.num_components)
    assert priors.nearest_component(moved, run.num_components)[0] == target
    np.testing.assert_allclose(np.linalg.norm(moved), np.linalg.norm(code), rtol=1e-5)
    np.testing.assert_array_equal(moved[:, 2:], code[:, 2:])
  genre = next(g for k, g in enumerate(run.genres) if k != source)
  transferred = generate.transfer(run, window.path, str(tmp_path), genre)[-1]
  assert transferred.name.endswith(f"_to_{genre}")
  expected = priors.move_to_component(code, source, run.genres.index(genre),
                                      run.num_components)
  np.testing.assert_array_equal(transferred.tokens, run.decode(expected)[0])


def test_samples_of_a_genre_come_from_its_component(run):
  for component in range(run.num_components):
    codes = runs.prior_codes(run, 0, 64, component)
    assert (priors.nearest_component(codes, run.num_components) == component).mean() > 0.9
    centre = runs.prior_codes(run, 1, 4, component, temperature=0.0)
    np.testing.assert_allclose(np.linalg.norm(centre[:, :2], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(centre[:, 2:], 0.0)


def _one_bar_song(path):
  """Less than a bar of a real song whose every track plays in it: a song shorter than a
  window that passes every other filter."""
  for name in ("What_a_Fool_Believes", "Girls_Just_Want_to_Have_Fun", "Aicha", "Shut_Up"):
    source = song.extract_windows(str(DEMO_MIDI / "miditok" / f"{name}.mid"), 2)
    # 15 steps: a note still sounding at the bar line would make the song 2 bars long.
    start = source.tokens[0][:15]
    if (start < 128).any(axis=0).all():
      midi_io.write_midi(start, path, programs=source.programs)
      return path
  raise AssertionError("no demo song has all four tracks in its first bar")


def test_bad_inputs_are_clear_one_line_errors(run, trained_run, tmp_path):
  out = str(tmp_path / "out")
  blue_sky = str(DEMO_MIDI / "miditok" / "Mr._Blue_Sky.mid")
  cases = [
      (lambda: generate.reconstruct(run, str(DEMO_MIDI / "miditok" / "Funkytown.mid"), out),
       r"Funkytown.mid: rejected: no bass track"),
      (lambda: generate.reconstruct(run, str(DEMO_MIDI / "miditok" / "Starlight.mid"), out),
       r"Starlight.mid: rejected: time signature 3/4"),
      (lambda: generate.reconstruct(run, _one_bar_song(str(tmp_path / "short.mid")), out),
       r"short.mid: rejected: too short: 1 bars, a window needs 2"),
      (lambda: generate.reconstruct(run, blue_sky, out, start_bar=3),
       r"no valid 2-bar window starts at bar 3 .*valid start bars: 11-35, 42-43, 50,"),
      (lambda: generate.reconstruct(run, str(tmp_path / "missing.mid"), out),
       r"missing.mid: no such file"),
      (lambda: generate.transfer(run, blue_sky, out, "polka"),
       r"genre 'polka' is not in the run's vocabulary .*: " + run.genres[0]),
      (lambda: generate.sample(run, out, 2, "polka"), r"genre 'polka' is not in"),
      (lambda: generate.interpolate(run, blue_sky, None, out, 3), r"needs --input2"),
      (lambda: generate.reconstruct(run, str(tmp_path), out), r": a folder, not a MIDI file"),
      (lambda: generate.generate(str(tmp_path), "sample", out), r"no config.json"),
      (lambda: generate.generate(str(tmp_path / "nowhere"), "sample", out), r"no such folder"),
      (lambda: generate.generate(trained_run.workdir, "sample", blue_sky),
       r"--out=.*Mr._Blue_Sky.mid: exists and is not a folder"),
      (lambda: generate.generate(trained_run.workdir, "dance", out), r"--mode='dance'"),
  ]
  for call, message in cases:
    with pytest.raises(UserError, match=message) as error:
      call()
    assert "\n" not in str(error.value)
  assert not os.path.exists(out) or not os.listdir(out)


def test_a_damaged_or_unreadable_run_is_one_line(trained_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained_run.workdir, workdir)
  checkpoints = workdir / "checkpoints"
  (newest,) = [int(name) for name in os.listdir(checkpoints)]
  shutil.copytree(checkpoints / str(newest), checkpoints / str(newest // 2))
  for path in (checkpoints / str(newest) / "params").rglob("*"):
    if path.is_file() and path.stat().st_size > 100:
      path.write_bytes(path.read_bytes()[:100])  # Cut, as by a full disk.
  # The newest readable checkpoint is used, with a warning; the damaged one asked for by name
  # is a one-line error.
  assert runs.load_run(str(workdir)).step == newest // 2
  with pytest.raises(UserError, match=rf"checkpoints/{newest} cannot be read .*; steps saved: "
                                      rf"{newest // 2}, {newest}\.$") as error:
    runs.load_run(str(workdir), newest)
  assert "\n" not in str(error.value)
  # A config.json cut while it was written (before writes were atomic) or edited badly.
  (workdir / "config.json").write_text('{"name": "x",')
  with pytest.raises(UserError, match=r"config.json: not valid JSON \(.*line 1 column 14\)"):
    runs.load_run(str(workdir))


def test_command_line_writes_files_and_reports_errors_in_one_line(trained_run, tmp_path):
  command = [sys.executable, "-m", "musae_jax.tools.generate", f"--workdir={trained_run.workdir}",
             f"--out={tmp_path}"]
  ok = subprocess.run(command + ["--mode=sample", "--num=2"], cwd=REPO, capture_output=True,
                      text=True, timeout=300)
  assert ok.returncode == 0, ok.stderr[-3000:]
  printed = ok.stdout.split()
  assert len(printed) == 4 and all(os.path.exists(p) for p in printed)
  bad = subprocess.run(command + ["--mode=transfer", f"--input={trained_run.train_songs[0]}",
                                  "--genre=polka"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2
  errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "'polka' is not in the run's vocabulary" in errors[0]
  assert "Traceback" not in bad.stderr


def test_long_encodes_and_decodes_show_progress_and_match_one_batch(run, capfd):
  # A whole validation split takes minutes to encode: more than PROGRESS_MIN_CHUNKS chunks show
  # a progress bar on stderr, fewer stay quiet. Chunk sizes change only the float rounding of
  # the batched matmuls (codes equal to 1e-5; an argmax may flip on a near tie).
  codes = runs.prior_codes(run, seed=0, num=runs.PROGRESS_MIN_CHUNKS + 1)
  capfd.readouterr()
  quiet = run.decode(codes[:runs.PROGRESS_MIN_CHUNKS], batch_size=1)
  assert "decoding" not in capfd.readouterr().err
  tokens = run.decode(codes, batch_size=1)
  assert f"decoding {len(codes)} windows" in capfd.readouterr().err
  assert (tokens == run.decode(codes)).mean() > 0.99
  np.testing.assert_array_equal(quiet, tokens[:runs.PROGRESS_MIN_CHUNKS])
  np.testing.assert_allclose(run.encode(tokens, batch_size=1), run.encode(tokens), atol=1e-5)
  assert f"encoding {len(codes)} windows" in capfd.readouterr().err


def test_posterior_sigma_is_the_encoders_own(run, trained_run):
  # Run.posterior_std is sigma = exp(logvar / 2) of the same encoder pass that gives the means.
  windows = input_windows.split_windows(trained_run.data_dir, run.bars, "train")
  sigma = run.posterior_std(windows.tokens)
  assert sigma.shape == (len(windows.tokens), run.latent_size) and (sigma > 0).all()
  model = nnx.merge(run.graphdef, run.params)
  mean, logvar = model.encode(jnp.asarray(windows.tokens, jnp.int32))
  np.testing.assert_allclose(sigma, np.exp(0.5 * np.asarray(logvar)), rtol=1e-5)
  np.testing.assert_allclose(run.encode(windows.tokens), mean, atol=1e-5)
