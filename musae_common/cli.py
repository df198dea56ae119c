"""The common start of every command-line tool (train, build, benchmark, generate, evaluate,
attributes, reproduce, explore): no stray arguments, the tool's log level, freed host memory kept
in the process (before JAX starts its threads), and a UserError printed as one line with exit
status 2 (errors.USER_ERROR_EXIT_CODE). So is a --config file that does not load."""

import os
import re
import sys
import traceback
from typing import Callable, Sequence, TypeVar

from absl import app
from absl import flags
from absl import logging

from musae_common import host_memory
from musae_common.errors import USER_ERROR_EXIT_CODE, UserError

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
    _exit_with_user_error(str(e))


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
  app.run(main, flags_parser=_parse_flags)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, where a --config file that raises while it loads (no get_config, an
  error in the file, an override naming no field) is one line instead of a traceback. absl
  itself reports only flags.Error (a bad value for a typed flag) that way."""
  try:
    return app.parse_flags_with_usage(argv)
  except Exception as e:  # pylint: disable=broad-except  (only config files run code here)
    _exit_with_user_error(config_load_error(_config_path(argv), e))


def config_load_error(path: str | None, error: BaseException) -> str:
  """One line saying why the config file at path did not load."""
  where = f"--config={path}" if path else "--config"
  file_path = path.split(":", 1)[0] if path else None
  if file_path and not os.path.isfile(file_path):
    return f"{where}: no such file."
  if isinstance(error, AttributeError) and "get_config" in str(error):
    return f"{where}: the file defines no get_config()."
  # Frames of the file's own code, if the error was raised there.
  in_file = [frame for frame in traceback.extract_tb(error.__traceback__)
             if file_path and os.path.abspath(frame.filename) == os.path.abspath(file_path)]
  if isinstance(error, (AttributeError, KeyError)) and not in_file:
    # ConfigDict's error for an override naming no field: "'name'", with a suggestion if any.
    misspelled = re.search(r'Did you mean "(\w+)" instead of "(\w+)"', str(error))
    name = re.search(r"'(\w+)", str(error))
    if misspelled:
      return (f"{where}: a --config.* override names no field {misspelled[2]!r} "
              f"(did you mean {misspelled[1]!r}?).")
    if name:
      return f"{where}: a --config.* override names no field {name[1]!r}."
  at = f" (line {in_file[-1].lineno})" if in_file else ""
  message = str(error).splitlines()[0] if str(error) else ""
  return f"{where}: the config does not load{at}: {type(error).__name__}: {message}"


def _config_path(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg[len("--config="):]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _exit_with_user_error(message: str):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(USER_ERROR_EXIT_CODE)


def loaded_config(holder: flags.FlagHolder):
  """The value of a config_flags.DEFINE_config_file flag. A file that could not be read at all
  parses to a placeholder that raises on first use; that becomes a UserError here."""
  config = holder.value
  try:
    config.get("name")  # Any access; the placeholder raises OSError.
  except OSError as e:
    raise UserError(config_load_error(flags.FLAGS[holder.name].config_filename, e)) from None
  return config


def output_folder(path: str, flag: str = "--out") -> str:
  """Creates an output folder, or says in one line why it cannot be one; called before a tool's
  long work, so that work is not lost at the first write."""
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"{flag}={path}: exists and is not a folder.")
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise UserError(f"{flag}={path}: cannot be created ({e.strerror}).") from None
  return path
