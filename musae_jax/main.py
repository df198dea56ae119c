r"""Trains MusAE: `python -m musae_jax.main --config=configs/16bar.py [--workdir=DIR]`.

Only flags live here; the program is musae_jax.train.train_and_evaluate. Any config field can be
overridden on the command line, e.g. `--config.batch_size=64 --config.data.midi_dir=~/midi`.
"""

import logging as py_logging

from absl import flags
from absl import logging
from ml_collections import config_flags

from musae_common import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory; default runs/<config.name>.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", "",
                                   "host:port of process 0 for multi-process runs (else SLURM's "
                                   "environment is used when present).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's index in a multi-process run.")
flags.mark_flags_as_required(["config"])


class _OnlyWarningsFromLibraries(py_logging.Filter):
  """Keeps our INFO lines but drops the per-save INFO chatter of orbax (dozens of lines)."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or "/orbax/" not in record.pathname


def _train() -> None:
  config = cli.loaded_config(_CONFIG)  # Before JAX starts: a missing file costs no import time.
  # Imported here so that --help stays fast and flags parse before JAX starts.
  from musae_jax import sharding  # pylint: disable=g-import-not-at-top
  from musae_jax import train  # pylint: disable=g-import-not-at-top
  sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  train.train_and_evaluate(config, _WORKDIR.value or f"runs/{config.name}")


def main(argv):
  logging.get_absl_handler().addFilter(_OnlyWarningsFromLibraries())
  cli.run_tool(argv, _train, verbosity=logging.INFO)


def console_main() -> None:
  """The musae-train console script."""
  cli.run_console(main, __name__)


if __name__ == "__main__":
  console_main()
