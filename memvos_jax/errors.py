"""Errors raised for bad user input (files, checkpoints, configs).

Every message names the offending file (or key) and the problem in one line,
so a user can fix the input without reading a traceback.
"""

USAGE_EXIT = 2   # the exit code of a command stopped by bad input (flags, config, launch)


class InputError(ValueError):
  """A user-supplied file or folder is missing, unreadable or inconsistent."""

  def __init__(self, path, problem):
    self.path = str(path)
    self.problem = problem
    super().__init__(f"{self.path}: {problem}")


class CheckpointError(ValueError):
  """A checkpoint does not match the network (missing/unexpected/mis-shaped keys)."""
