"""The evaluation report on a run trained in this session, and its parts on known inputs."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_pipeline import song
from data_pipeline.tokens import TRACKS
from musae_common.errors import UserError
from musae_jax.tools import evaluate
from musae_jax.tools import input_windows
from musae_jax.tools import music_metrics
from musae_jax.tools import runs
from tests.conftest_run import DEMO_MIDI, REPO


def _demo_windows():
  """(windows kept, songs kept, songs rejected) of the demo set, counted song by song."""
  kept_windows = kept_songs = rejected = 0
  for path in glob.glob(str(DEMO_MIDI / "**" / "*.mid"), recursive=True):
    try:
      windows = song.extract_windows(path, 2)
    except song.RejectedSong:
      rejected += 1
      continue
    kept_windows += len(windows.tokens)
    kept_songs += len(windows.tokens) > 0
  return kept_windows, kept_songs, rejected


def test_report_on_the_demo_set_has_the_four_results(trained_run, tmp_path):
  out = tmp_path / "report"
  result = subprocess.run(
      [sys.executable, "-m", "musae_jax.tools.evaluate", f"--workdir={trained_run.workdir}",
       f"--midi_dir={DEMO_MIDI}", f"--genres={REPO / 'demo_data' / 'genres.json'}",
       f"--out={out}", "--num_pairs=32", "--samples_per_component=16"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((out / "metrics.json").read_text())

  num_windows, num_songs, num_rejected = _demo_windows()
  assert (metrics["num_windows"], metrics["num_songs"]) == (num_windows, num_songs)
  assert sum(metrics["rejected_songs"].values()) == num_rejected
  for name in ("accuracy", "note_accuracy", "onset_f1"):
    assert set(metrics[name]) >= set(TRACKS) | {"mean"}
    assert all(0.0 <= metrics[name][k] <= 1.0 for k in TRACKS if metrics[name][k] is not None)
  accuracy = metrics["accuracy"]
  assert accuracy["mean"] == pytest.approx(np.mean([accuracy[t] for t in TRACKS]))
  assert accuracy["mean_dbg"] == pytest.approx(np.mean([accuracy[t] for t in TRACKS[:3]]))

  curves = metrics["interpolation"]
  assert curves["alpha"] == pytest.approx(np.linspace(0, 1, 11).tolist())
  assert len(curves["latent_hamming"]) == len(curves["data_hamming"]) == 11
  assert curves["data_hamming"][0] == 0.0
  assert np.all(np.diff(curves["data_hamming"]) > 0)  # The Bernoulli mix moves away from x1.
  assert all(0.0 <= h <= 1.0 for h in curves["latent_hamming"])

  probe = metrics["genre_probe"]
  assert 0.0 <= probe["accuracy"] <= 1.0 and 0.0 < probe["chance"] < 1.0
  assert ["rock", "pop"] in [sorted(p["genres"], reverse=True) for p in probe["pairs"]]

  components = metrics["components"]  # The fixture's prior is the flower.
  assert components["components"][-1] == "unlabeled"
  assert np.array(components["relative_deviation"]).shape == (
      4 * len(music_metrics.DESCRIPTORS), len(components["components"]))

  report = (out / "report.md").read_text()
  fit = metrics["prior_fit"]
  assert abs(fit["mmd_squared_prior_vs_prior"]) < 0.01 < fit["mmd_squared"]  # Barely trained.
  density = fit["descriptors"]["note_density"]["data"]
  assert density[0] > 0 and all(0 <= d <= 16 for d in density)
  for heading in ("Table 1", "Figure 4", "Figure 3", "Figure 5", "Prior fit"):
    assert f"## {heading}" in report
  for picture in metrics["figures"].values():
    assert f"]({picture})" in report
    assert (out / picture).read_bytes()[:4] == b"\x89PNG"
  assert f"| drums | {accuracy['drums']:.3f} |" in report


def test_accuracy_equals_the_trainers_validation_accuracy(trained_run):
  """The tool restores the trained parameters and scores windows exactly as training did."""
  run = runs.load_run(trained_run.workdir)
  windows = input_windows.split_windows(trained_run.data_dir, 2, "validation")
  counts = music_metrics.ReconstructionCounts()
  counts.update(run.reconstruct(windows.tokens), windows.tokens)
  logged = [json.loads(line) for line in
            open(os.path.join(trained_run.workdir, "metrics.jsonl"), encoding="utf-8")]
  final = [line for line in logged if "validation/accuracy/drums" in line][-1]
  assert final["step"] == run.step
  for track in TRACKS:
    assert counts.scores()["accuracy"][track] == pytest.approx(
        final[f"validation/accuracy/{track}"], abs=1e-6)
    assert counts.scores()["note_accuracy"][track] == pytest.approx(
        final[f"validation/note_accuracy/{track}"], abs=1e-6)


def test_evaluate_on_a_split_writes_metrics(trained_run, tmp_path):
  run = runs.load_run(trained_run.workdir)
  windows = input_windows.split_windows(trained_run.data_dir, 2, "train")
  metrics = evaluate.evaluate(run, windows, str(tmp_path), num_pairs=4, samples_per_component=4)
  assert metrics["num_windows"] == len(windows.tokens)
  assert metrics["num_songs"] == len(trained_run.train_songs)
  assert metrics["interpolation"]["num_pairs"] == 4
  # Two windows from two songs: every pair interpolates between them, so at alpha = 0 the
  # distance is the reconstruction error of the pair's start window.
  assert metrics["interpolation"]["latent_hamming"][0] <= 0.1
  assert metrics["genre_probe"]["accuracy"] is None  # One song per genre: nothing held out.
  assert "Not computed" in (tmp_path / "report.md").read_text()


def test_probe_accuracy_reflects_genre_information_in_the_codes():
  rng = np.random.default_rng(0)
  songs = np.repeat(np.arange(12), 10)
  labels = (songs % 2).astype(np.int64)
  informative = rng.normal(size=(120, 8)) + 3.0 * labels[:, None]
  accuracy, chance = evaluate.probe_pair(informative, labels, songs)
  assert accuracy > 0.95 and chance == pytest.approx(0.5, abs=0.2)
  accuracy, chance = evaluate.probe_pair(rng.normal(size=(120, 8)), labels, songs)
  assert accuracy < 0.8


def test_the_data_is_a_split_or_a_midi_folder(trained_run, tmp_path):
  with pytest.raises(UserError, match="exactly one of --split"):
    evaluate.check_data_flags("validation", "some/dir", None)
  with pytest.raises(UserError, match="exactly one of --split"):
    evaluate.check_data_flags(None, None, None)
  with pytest.raises(UserError, match="--genres goes with --midi_dir"):
    evaluate.check_data_flags("validation", None, "genres.json")
  run = runs.load_run(trained_run.workdir)
  with pytest.raises(UserError, match="no .mid or .midi file"):
    input_windows.midi_dir_windows(str(tmp_path), 2, run.genres)
  with pytest.raises(UserError, match="no 2-bar dataset is built there"):
    input_windows.split_windows(str(tmp_path), 2, "validation")
  with pytest.raises(UserError, match="has no readable 'test' split"):
    input_windows.split_windows(trained_run.data_dir, 2, "test")
  evaluate.check_count_flags(max_windows=0, num_pairs=1, samples_per_component=1)
  with pytest.raises(UserError, match=r"--max_windows=-1: must be at least 0"):
    evaluate.check_count_flags(max_windows=-1, num_pairs=256)
  with pytest.raises(UserError, match=r"--num_pairs=0: must be at least 1"):
    evaluate.check_count_flags(max_windows=64, num_pairs=0)


def test_mmd_tells_one_distribution_from_a_shifted_one():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 500, 16))
  same = evaluate.mmd_squared(a, b, bandwidth=np.sqrt(32))
  shifted = evaluate.mmd_squared(a, b + 0.5, bandwidth=np.sqrt(32))
  collapsed = evaluate.mmd_squared(0.1 * a, b, bandwidth=np.sqrt(32))
  assert abs(same) < 0.005
  assert min(shifted, collapsed) > 0.04  # A shift of 2 (a code norm of 0.4 vs 4): clearly seen.
