"""The one exception type for mistakes a user can fix (bad config, missing data or checkpoint).

Entry points catch it and print its message as one line instead of a traceback.
"""


class UserError(Exception):
  """A problem with the user's input, explained in one sentence that names the culprit."""
