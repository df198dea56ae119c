"""Records the parameters that tests/test_compat.py compares training with.

  python tests/make_golden_params.py OUT_DIR

Trains the cases of CASES (tiny configs of tests/train_helpers.py, 12 steps on the demo songs)
and writes OUT_DIR/<case>.npz (every parameter, keyed by its path) and environment.json. The
files in tests/data/golden_35b2c18/ were written by this script at commit 35b2c18, before the
tools moved to musae_jax/tools/ (the run of the "fused_flower" case is kept there too, as a
checkpoint written by that code).
"""

import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# pylint: disable=wrong-import-position
import jax
import numpy as np

from data_pipeline import build as data_build
from data_pipeline import loader
from musae_jax import train
from tests import golden_environment
from tests import train_helpers

CASES = {
    "scan_flower": {"model.lstm_impl": "scan"},
    "fused_flower": {},
    "scan_gauss_deep": {"model.lstm_impl": "scan", "model.prior": "gaussian",
                        "model.encoder_layers": 2, "model.decoder_layers": 2,
                        "model.residual": True, "model.initial_posterior_std": 0.01},
}


def flat_params(params) -> dict[str, np.ndarray]:
  return {jax.tree_util.keystr(path): np.asarray(value)
          for path, value in jax.tree_util.tree_flatten_with_path(params)[0]}


def train_case(data_dir: str, workdir: str, overrides: dict) -> dict[str, np.ndarray]:
  config = train_helpers.tiny_config(data_dir, **overrides)
  train.train_and_evaluate(config, workdir)
  num_genres = len(loader.genre_vocabulary(data_dir, 2))
  return flat_params(train_helpers.final_params(workdir, config, num_genres))


def main(out: str) -> None:
  out_dir = pathlib.Path(out)
  out_dir.mkdir(parents=True, exist_ok=True)
  data_dir = str(out_dir / "tfds")
  if not os.path.isdir(data_dir):
    data_build.build_dataset(str(train_helpers.REPO / "demo_data" / "midi"), data_dir, 2,
                             genres_file=str(train_helpers.REPO / "demo_data" / "genres.json"),
                             workers=1)
  for name, overrides in CASES.items():
    np.savez(out_dir / f"{name}.npz", **train_case(data_dir, str(out_dir / name), overrides))
  (out_dir / "environment.json").write_text(json.dumps(golden_environment.environment(),
                                                       indent=1) + "\n")


if __name__ == "__main__":  # The dataset build starts worker processes that re-import this file.
  main(sys.argv[1])
