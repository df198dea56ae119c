"""Attribute vectors: the high-minus-low rule on real windows, saving, and the generate mode."""

import glob
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from data_pipeline import song
from musae_common.errors import UserError
from musae_jax.tools import attributes
from musae_jax.tools import generate
from musae_jax.tools import music_metrics
from musae_jax.tools import runs
from tests.conftest_run import DEMO_MIDI, REPO


def _demo_tokens():
  tokens = []
  for path in sorted(glob.glob(str(DEMO_MIDI / "miditok" / "*.mid"))):
    try:
      tokens.append(song.extract_windows(path, 2).tokens)
    except song.RejectedSong:
      continue
  return np.concatenate(tokens)


def test_vector_points_along_the_code_direction_that_carries_the_attribute():
  tokens = _demo_tokens()
  descriptors = music_metrics.window_descriptors(tokens)
  density = descriptors["note_density"][:, 1]  # bass
  rng = np.random.default_rng(0)
  codes = 0.1 * rng.normal(size=(len(tokens), 6))
  codes[:, 4] += (density - density.mean()) / density.std()
  vectors, info = attributes.compute_vectors(codes, descriptors, quantile=0.25)
  vector = vectors["bass_note_density"]
  assert np.argmax(np.abs(vector)) == 4 and vector[4] > 1.0
  assert info["bass_note_density"]["high_mean"] > info["bass_note_density"]["low_mean"]
  for name, record in info.items():
    assert min(record["num_high"], record["num_low"]) >= attributes.MIN_WINDOWS
    assert record["high_mean"] > record["low_mean"], name
  for track in ("drums", "bass", "guitar", "strings"):
    for descriptor in ("note_density", "mean_pitch", "mean_note_length"):
      assert f"{track}_{descriptor}" in vectors


def test_a_descriptor_without_spread_gets_no_vector():
  tokens = _demo_tokens()[:40]
  descriptors = music_metrics.window_descriptors(tokens)
  descriptors["silent_rate"][:] = 0.5  # Every window alike.
  vectors, _ = attributes.compute_vectors(np.zeros((40, 3)), descriptors)
  assert not any(name.endswith("silent_rate") for name in vectors)
  with pytest.raises(UserError, match="--quantile=0.7"):
    attributes.compute_vectors(np.zeros((40, 3)), descriptors, quantile=0.7)


def test_command_computes_vectors_that_the_attribute_mode_adds(trained_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained_run.workdir, workdir)  # The vectors are written into the run.
  song_path = trained_run.train_songs[0]
  run = runs.load_run(str(workdir))
  with pytest.raises(UserError, match="no attribute vectors yet"):
    generate.attribute(run, song_path, str(tmp_path / "out"), "bass_note_density", 1.0)

  result = subprocess.run(
      [sys.executable, "-m", "musae_jax.tools.attributes", f"--workdir={workdir}",
       f"--midi_dir={DEMO_MIDI}", "--max_windows=400", "--check_windows=8"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "attribute vectors from 400 windows" in result.stdout
  summary = json.loads((workdir / attributes.SUMMARY_FILE).read_text())
  assert summary["num_windows"] == 400 and summary["step"] == run.step
  record = summary["vectors"]["bass_note_density"]
  assert record["high_mean"] > record["low_mean"]
  assert "effect_of_plus_vector" in record and "effect_of_minus_vector" in record

  vector = attributes.load_vector(str(workdir), "bass_note_density", run.latent_size)
  outputs = generate.attribute(run, song_path, str(tmp_path / "out"), "bass_note_density", 2.0)
  assert [o.name.rsplit("_", 1)[-1] for o in outputs] == ["input", "reconstruction", "+2"]
  code = run.encode(outputs[0].tokens[None])
  np.testing.assert_array_equal(outputs[-1].tokens, run.decode(code + 2.0 * vector)[0])
  assert all(p.endswith((".mid", ".png")) for o in outputs for p in o.paths)
  with pytest.raises(UserError, match="attribute 'loudness' is not in .*bass_note_density"):
    generate.attribute(run, song_path, str(tmp_path / "out"), "loudness", 1.0)
