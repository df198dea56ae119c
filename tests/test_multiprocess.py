"""Multi-process data parallelism on CPU: launch.sh's local processes equal one process."""

import os
import subprocess
import sys

from data_pipeline import loader
from tests import train_helpers
from tests.train_helpers import REPO

_FIELDS = ("--config.batch_size=8", "--config.model.hidden_size=16", "--config.model.latent_size=8",
           "--config.model.critic_hidden_size=16", "--config.model.encoder_layers=1",
           "--config.model.decoder_layers=1", "--config.num_train_steps=6",
           "--config.log_every_steps=3", "--config.checkpoint_every_steps=3",
           "--config.eval_every_steps=6", "--config.num_eval_batches=1")


def _launch(workdir, data_dir, *launch_options):
  env = dict(os.environ, PYTHON=os.environ.get("PYTHON", sys.executable))
  env.pop("XLA_FLAGS", None)
  command = ["bash", str(REPO / "launch.sh"), *launch_options, "--",
             "--config=configs/demo.py", f"--workdir={workdir}",
             f"--config.data.data_dir={data_dir}", *_FIELDS]
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=500)
  assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
  return result


def test_two_processes_of_two_devices_equal_one_process_of_four(demo_data_dir, tmp_path):
  _launch(tmp_path / "one", demo_data_dir, "--local_processes=1", "--devices_per_process=4")
  result = _launch(tmp_path / "two", demo_data_dir, "--local_processes=2",
                   "--devices_per_process=2")
  assert "[process 1]" in result.stdout
  config = train_helpers.tiny_config(demo_data_dir)
  genres = len(loader.genre_vocabulary(demo_data_dir, 2))
  train_helpers.assert_trees_equal(train_helpers.final_params(tmp_path / "one", config, genres),
                                   train_helpers.final_params(tmp_path / "two", config, genres),
                                   rtol=1e-4, atol=1e-6)
  # Only process 0 writes logs and metrics.
  lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
  assert len([l for l in lines if "train/loss/total" in l]) == 2
