"""The reproduction suite end to end on the demo songs (tiny models, a few steps), its
baselines and its errors."""

import json
import os

import numpy as np
import pytest

from musae_common.errors import UserError
from musae_jax.tools import reproduce
from tests.train_helpers import REPO

DEMO_MIDI = str(REPO / "demo_data" / "midi")
DEMO_GENRES = str(REPO / "demo_data" / "genres.json")
TINY = ["model.hidden_size=16", "model.latent_size=8", "model.critic_hidden_size=16",
        "batch_size=8", "num_eval_batches=2"]


def test_cpu_suite_builds_trains_evaluates_and_resumes(tmp_path):
  out = str(tmp_path)
  results = reproduce.run_suite("cpu", DEMO_MIDI, DEMO_GENRES, out, num_train_steps=4,
                                max_eval_windows=48, num_pairs=4, overrides=TINY)
  assert [r["name"] for r in results] == list(reproduce.SUITES["cpu"])
  assert [(r["bars"], r["prior"]) for r in results] == [(2, "gaussian"), (16, "gaussian"),
                                                          (16, "flower")]
  for result in results:
    assert result["step"] == 4 and result["windows"] == 48
    assert result["size"]["hidden_size"] == 16 and result["size"]["encoder_layers"] == 3
    for key in ("model", "majority", "prior_mean"):
      accuracy = result[key]["accuracy"]
      assert all(0.0 <= accuracy[t] <= 1.0 for t in ("drums", "bass", "guitar", "strings"))
    # The majority baseline beats an untrained model token by token (hold/silent dominate).
    assert result["majority"]["accuracy"]["mean"] > result["model"]["accuracy"]["mean"]
    assert os.path.exists(os.path.join(out, result["curves"]))
    assert os.path.exists(os.path.join(out, result["report"]))
  saved = json.loads((tmp_path / "results.json").read_text())
  assert [r["name"] for r in saved["runs"]] == list(reproduce.SUITES["cpu"])
  table = (tmp_path / "results.md").read_text()
  assert "| paper (LMD) | 0.999 |" in table and "| paper (LMD) | 0.911 | 0.880 |" in table
  assert table.count("majority baseline") == 3 and table.count("prior-mean baseline") == 3

  # The ablation figure draws several runs' curves from their metrics.jsonl.
  from musae_jax.tools import plots  # pylint: disable=g-import-not-at-top
  figure = plots.compare_runs({name: str(tmp_path / "runs" / name / "metrics.jsonl")
                               for name in reproduce.SUITES["cpu"]}, str(tmp_path / "cmp.png"))
  assert open(figure, "rb").read(8) == b"\x89PNG\r\n\x1a\n"

  # Running again with more steps resumes each run from its checkpoint.
  results = reproduce.run_suite("cpu", DEMO_MIDI, DEMO_GENRES, out, num_train_steps=6,
                                max_eval_windows=48, num_pairs=4, overrides=TINY,
                                only=["corpus_2bar"])
  assert [r["step"] for r in results] == [6]
  assert sorted(os.listdir(tmp_path / "runs" / "corpus_2bar" / "checkpoints"))[-1] == "6"
  # The table keeps the runs evaluated before; the re-evaluated run replaces its row.
  saved = json.loads((tmp_path / "results.json").read_text())
  assert [(r["name"], r["step"]) for r in saved["runs"]] == [
      ("corpus_2bar", 6), ("corpus_16bar", 4), ("corpus_16bar_gm", 4)]

  # A chosen checkpoint step (runs compared at equal steps); a missing one is a clear error.
  results = reproduce.run_suite("cpu", DEMO_MIDI, DEMO_GENRES, out, stage="evaluate",
                                max_eval_windows=48, num_pairs=4, overrides=TINY,
                                only=["corpus_2bar"], eval_step=4)
  assert [r["step"] for r in results] == [4]
  with pytest.raises(UserError, match=r"no checkpoint of step 5; it has steps 4, 6"):
    reproduce.run_suite("cpu", DEMO_MIDI, DEMO_GENRES, out, stage="evaluate",
                        max_eval_windows=48, num_pairs=4, overrides=TINY,
                        only=["corpus_2bar"], eval_step=5)


def test_majority_baseline_is_the_best_z_free_token_predictor(demo_data_dir):
  from musae_jax.tools import input_windows  # pylint: disable=g-import-not-at-top
  majority = reproduce.majority_tokens(demo_data_dir, 2)
  train = input_windows.split_windows(demo_data_dir, 2, "train").tokens
  assert majority.shape == train.shape[1:]
  best = (np.broadcast_to(majority, train.shape) == train).sum()
  # No other per-position token does better on the data it was counted on: try each position's
  # runner-up and the per-track global mode.
  rng = np.random.default_rng(0)
  for _ in range(20):
    other = majority.copy()
    t, k = rng.integers(0, other.shape[0]), rng.integers(0, 4)
    other[t, k] = rng.integers(0, 130)
    assert (np.broadcast_to(other, train.shape) == train).sum() <= best
  modes = np.array([np.bincount(train[..., k].ravel(), minlength=130).argmax() for k in range(4)])
  assert (np.broadcast_to(modes, train.shape) == train).sum() <= best


def test_bad_suite_input_is_one_line(tmp_path):
  with pytest.raises(UserError, match="--set=model.hidden=3"):
    reproduce.run_suite("cpu", DEMO_MIDI, None, str(tmp_path), overrides=["model.hidden=3"])
  with pytest.raises(UserError, match="is not of type int"):
    reproduce.run_suite("cpu", DEMO_MIDI, None, str(tmp_path), overrides=["batch_size=many"])
  with pytest.raises(UserError, match="not a folder"):
    reproduce.run_suite("cpu", str(tmp_path / "nothing"), None, str(tmp_path))
  with pytest.raises(UserError, match="the cpu suite has"):
    reproduce.run_suite("cpu", DEMO_MIDI, None, str(tmp_path), only=["2bar"])
  # Evaluating runs that were never trained (a mistyped --out) builds no dataset first.
  with pytest.raises(UserError, match=r"runs/corpus_2bar: no trained run there"):
    reproduce.run_suite("cpu", DEMO_MIDI, None, str(tmp_path / "out"), stage="evaluate")
  assert not os.path.exists(tmp_path / "out" / "tfds")
