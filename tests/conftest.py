"""Shared test fixtures: where the development MIDI corpus lives."""

import os
import pathlib

import pytest


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
