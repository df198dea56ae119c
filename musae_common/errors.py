"""The one exception family for mistakes a user can fix, in both data_pipeline and musae_jax.

A UserError's message is one sentence naming the culprit (a file, a flag, a config field) and
what is wrong with it. Every command-line tool prints it as one line, without a traceback, and
exits with status USER_ERROR_EXIT_CODE (cli.py).
"""

USER_ERROR_EXIT_CODE = 2  # As absl's usage errors: the command was wrong, not the program.


class UserError(Exception):
  """A problem with the user's input, explained in one sentence that names the culprit."""
