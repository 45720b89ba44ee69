"""Specification of wgan_jax.errors: a user error is one line and exit status 1."""

import pytest

from wgan_jax import errors


def test_a_user_error_becomes_one_stderr_line_and_exit_1(capsys, monkeypatch):
  monkeypatch.delenv(errors.TRACEBACK_ENV, raising=False)
  with pytest.raises(SystemExit) as exit_:
    with errors.exit_on_user_error("prog"):
      raise errors.ConfigError("config.x=1 is bad; set it to 2.")
  assert exit_.value.code == 1
  assert capsys.readouterr().err == "prog: error: config.x=1 is bad; set it to 2.\n"


def test_the_traceback_is_shown_on_request(monkeypatch):
  monkeypatch.setenv(errors.TRACEBACK_ENV, "1")
  with pytest.raises(errors.DataError):
    with errors.exit_on_user_error("prog"):
      raise errors.DataError("no images")
  monkeypatch.delenv(errors.TRACEBACK_ENV)
  with pytest.raises(errors.MissingFileError):
    with errors.exit_on_user_error("prog", verbosity=1):
      raise errors.MissingFileError("no checkpoint")


def test_bugs_keep_their_traceback():
  with pytest.raises(ZeroDivisionError):
    with errors.exit_on_user_error("prog"):
      _ = 1 / 0


def test_user_errors_are_the_builtin_kinds_they_refine():
  assert issubclass(errors.ConfigError, ValueError)
  assert issubclass(errors.DataError, ValueError)
  assert issubclass(errors.MissingFileError, FileNotFoundError)
