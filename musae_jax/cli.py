"""The common start of the command-line tools (generate, evaluate, attributes, reproduce,
explore): no stray arguments, the tool's log level, freed host memory kept in the process
(before JAX starts its threads), and a UserError printed as one line with exit status 2."""

import sys
from typing import Callable, TypeVar

from absl import app
from absl import logging

from musae_jax import host_memory
from musae_jax.errors import UserError

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
    sys.exit(2)
