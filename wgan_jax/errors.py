"""User errors: what was asked for cannot work, and the message says the fix.

Every check that a user can trip (a bad config field, a missing path, an
unreadable dataset, a workdir without checkpoints, a resume that would change
the mathematics) raises a `UserError`. The command-line programs
(`wgan_jax.main`, `wgan_jax.evaluate`, `wgan_jax.generate`) print its message
as one line and exit with status 1, without a traceback; set
WGAN_JAX_TRACEBACK=1 (or pass --verbosity=1 to main/generate) to see it.
"""

import contextlib
import os
import sys
from typing import Iterator

TRACEBACK_ENV = "WGAN_JAX_TRACEBACK"
EXIT_STATUS = 1


class UserError(Exception):
  """What the user asked for cannot work; the message names the thing and the fix."""


class ConfigError(UserError, ValueError):
  """A config field (or flag) has a value that cannot work."""


class DataError(UserError, ValueError):
  """The configured data cannot be loaded; the message names file and fix."""


class MissingFileError(UserError, FileNotFoundError):
  """A file or folder the run needs does not exist (checkpoints, weights)."""


def show_traceback(verbosity: int = 0) -> bool:
  """Whether user errors should propagate with their traceback."""
  return verbosity >= 1 or os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


@contextlib.contextmanager
def exit_on_user_error(prog: str, verbosity: int = 0) -> Iterator[None]:
  """Turns a UserError into one line on stderr and SystemExit(1).

  Other exceptions (bugs) keep their traceback.
  """
  try:
    yield
  except UserError as e:
    if show_traceback(verbosity):
      raise
    print_error(prog, e)
    raise SystemExit(EXIT_STATUS) from None


def print_error(prog: str, error: UserError) -> None:
  """Prints `error` as one line `PROG: error: ...` on stderr.

  An error with a true `exit_immediately` attribute then ends the process
  with os._exit(EXIT_STATUS): a half-started runtime
  (distributed.CoordinatorError) would log its teardown, or abort.
  """
  message = " ".join(str(error).split("\n"))
  print(f"{prog}: error: {message}", file=sys.stderr)
  if getattr(error, "exit_immediately", False):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_STATUS)
