"""The common start of every command-line tool (train, build, benchmark, generate, evaluate,
attributes, reproduce, explore): no stray arguments, the tool's log level, freed host memory kept
in the process (before JAX starts its threads), and a UserError printed as one line with exit
status 2 (errors.USER_ERROR_EXIT_CODE)."""

import sys
from typing import Callable, Sequence, TypeVar

from absl import app
from absl import flags
from absl import logging

from musae_jax import host_memory
from musae_jax.errors import USER_ERROR_EXIT_CODE, UserError

T = TypeVar("T")


def run_tool(argv: list[str], body: Callable[[], T], verbosity: int = logging.WARNING) -> T:
  """Runs body() under the tools' conventions and returns its result."""
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(verbosity)
  host_memory.keep_freed_memory()
  try:
    return body()
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(USER_ERROR_EXIT_CODE)


def run_console(main: Callable[[list[str]], None], module_name: str,
                define_flags: Callable[[], None] | None = None, required: Sequence[str] = ()
                ) -> None:
  """Starts a tool from its console script (musae-generate, ...) or `python -m`: defines its
  flags, marks the required ones and runs main. --help lists the flags of the tool's module
  (absl lists those of the file that was run, which for a console script is the script)."""
  if define_flags is not None:
    define_flags()
  flags.mark_flags_as_required(list(required))
  for flag in flags.FLAGS.get_key_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(main)
