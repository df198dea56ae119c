"""Shared test fixtures: where the development MIDI corpus lives; a shared XLA cache."""

import os
import pathlib
import tempfile

import pytest

# The tiny trained run the tests of the inference tools share.
pytest_plugins = ["tests.conftest_run"]

# Many tests (and the training subprocesses they start, which inherit the environment) compile
# the same tiny models: a persistent compilation cache shared by the whole run compiles each
# once. Set before anything imports JAX.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "musae_jax_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def shared_data_dir() -> pathlib.Path:
  """The corpus folder (holding midi/, bad/, genres.json, manifest.csv, labels/).

  $MUSAE_SHARED names the shared folder; by default it sits beside the
  repository (../shared), as in CI.
  """
  root = os.environ.get("MUSAE_SHARED")
  shared = pathlib.Path(root) if root else pathlib.Path(__file__).resolve().parents[2] / "shared"
  return shared / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """The corpus folder; the test is skipped, with the reason, when it is absent."""
  path = shared_data_dir()
  if not (path / "midi").is_dir():
    pytest.skip(f"the development corpus is not in {path} (set MUSAE_SHARED)")
  return path


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory) -> str:
  """The 2-bar dataset of the embedded demo songs, built once per test session (per worker)."""
  from data_pipeline import build as data_build  # pylint: disable=g-import-not-at-top
  repo = pathlib.Path(__file__).resolve().parents[1]
  data_dir = str(tmp_path_factory.mktemp("demo_tfds"))
  data_build.build_dataset(str(repo / "demo_data" / "midi"), data_dir, 2,
                           genres_file=str(repo / "demo_data" / "genres.json"), workers=1)
  return data_dir
