"""A tiny flower-prior run, trained once per test session, for the tests of the inference tools.

Test modules import the `trained_run` fixture from here. The run overfits a few real 2-bar
windows: the first valid window of demo songs, each written as its own MIDI file (so a song is
exactly one window and the content-hash split is known before building). Training is full-batch
and the adversarial weight stays 0, so a few hundred steps memorise the training windows.

Pytest may create the fixture once per importing module, and pytest-xdist runs one session per
worker: the run is built under the workers' shared temporary folder behind a file lock, and
later requests reuse it.
"""

import dataclasses
import fcntl
import glob
import hashlib
import json
import os
import pathlib
import shutil

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMO_MIDI = REPO / "demo_data" / "midi"
NUM_TRAIN_SONGS = 2
NUM_VALIDATION_SONGS = 1
TRAIN_STEPS = 800


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  workdir: str  # the training run directory (config.json, genres.json, checkpoints/)
  data_dir: str  # TFDS data_dir of its 2-bar dataset
  midi_dir: str  # the one-window songs it was built from
  genres_file: str  # their genre labels
  train_songs: tuple[str, ...]  # paths of the songs in the train split
  validation_songs: tuple[str, ...]


def _write_excerpts(midi_dir: str) -> dict[str, tuple[list[str], int]]:
  """Writes the first valid 2-bar window of every demo song that passes the filters as
  <midi_dir>/<name>.mid; returns {file name: (the song's demo genre tags, distinct tokens)}."""
  from data_pipeline import midi_io  # pylint: disable=g-import-not-at-top
  from data_pipeline import song  # pylint: disable=g-import-not-at-top
  demo_genres = json.loads((REPO / "demo_data" / "genres.json").read_text())
  labels = {}
  for path in sorted(glob.glob(str(DEMO_MIDI / "**" / "*.mid"), recursive=True)):
    try:
      windows = song.extract_windows(path, 2)
    except song.RejectedSong:
      continue
    if len(windows.tokens) == 0:
      continue
    first = int(windows.start_bars.argmin())
    name = os.path.basename(path)
    midi_io.write_midi(windows.tokens[first], os.path.join(midi_dir, name),
                       programs=windows.programs, tempo_qpm=windows.tempo_qpm)
    labels[name] = (demo_genres.get(os.path.relpath(path, DEMO_MIDI), []),
                    len(np.unique(windows.tokens[first])))
  return labels


def _choose_songs(staging: str, labels: dict[str, tuple[list[str], int]], midi_dir: str):
  """Moves the NUM_TRAIN_SONGS simplest labelled train-split excerpts (fewest distinct tokens:
  they are memorised fastest) and NUM_VALIDATION_SONGS validation ones into midi_dir; returns
  (train names, validation names)."""
  from data_pipeline import split  # pylint: disable=g-import-not-at-top
  chosen = {split.TRAIN: [], split.VALIDATION: []}
  wanted = {split.TRAIN: NUM_TRAIN_SONGS, split.VALIDATION: NUM_VALIDATION_SONGS}
  for name, (tags, _) in sorted(labels.items(), key=lambda item: (item[1][1], item[0])):
    md5 = hashlib.md5(pathlib.Path(staging, name).read_bytes()).hexdigest()
    which = split.song_split(md5)
    if tags and len(chosen[which]) < wanted[which]:
      chosen[which].append(name)
      os.replace(os.path.join(staging, name), os.path.join(midi_dir, name))
  if any(len(chosen[k]) < wanted[k] for k in wanted):
    raise RuntimeError(f"not enough demo excerpts per split: {chosen}")
  return chosen[split.TRAIN], chosen[split.VALIDATION]


def _train(root: pathlib.Path) -> TrainedRun:
  from configs import demo  # pylint: disable=g-import-not-at-top
  from data_pipeline import build  # pylint: disable=g-import-not-at-top
  from data_pipeline import loader  # pylint: disable=g-import-not-at-top
  from musae_jax import train  # pylint: disable=g-import-not-at-top
  shutil.rmtree(root, ignore_errors=True)  # What an interrupted earlier attempt left.
  staging, midi_dir = root / "excerpts", root / "midi"
  staging.mkdir(parents=True)
  midi_dir.mkdir()
  labels = _write_excerpts(str(staging))
  train_names, validation_names = _choose_songs(str(staging), labels, str(midi_dir))
  genres_file = root / "genres.json"
  genres_file.write_text(json.dumps({n: labels[n][0] for n in train_names + validation_names}))
  data_dir = str(root / "tfds")
  build.build_dataset(str(midi_dir), data_dir, 2, genres_file=str(genres_file), workers=1)

  config = demo.get_config()
  config.data.data_dir = data_dir
  config.data.transpose_min = config.data.transpose_max = 0  # Memorise the windows as they are.
  config.batch_size = loader.num_examples(data_dir, 2, "train")  # Full batch.
  config.num_train_steps = TRAIN_STEPS
  config.log_every_steps = 100
  config.eval_every_steps = TRAIN_STEPS
  config.checkpoint_every_steps = TRAIN_STEPS
  config.model.hidden_size = 128
  config.model.latent_size = 32
  config.model.critic_hidden_size = 32
  config.model.encoder_layers = 1
  config.model.decoder_layers = 1
  config.optim.learning_rate = 3e-3
  config.optim.beta_max = 0.0  # Reconstruction only: the tests overfit, the prior is geometry.
  workdir = str(root / "run")
  train.train_and_evaluate(config, workdir)
  return TrainedRun(workdir, data_dir, str(midi_dir), str(genres_file),
                    tuple(str(midi_dir / n) for n in train_names),
                    tuple(str(midi_dir / n) for n in validation_names))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> TrainedRun:
  base = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    base = base.parent  # Shared by all workers of this session.
  root = base / "musae_trained_run"
  record = base / "musae_trained_run.json"
  with open(base / "musae_trained_run.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if record.exists():
      fields = json.loads(record.read_text())
      return TrainedRun(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    run = _train(root)
    record.write_text(json.dumps(dataclasses.asdict(run)))
    return run
