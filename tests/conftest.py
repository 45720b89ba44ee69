"""Test setup: 8 fake CPU devices, and where real data is found.

XLA reads XLA_FLAGS once, when the backend starts, so the flag is set here,
before any test module imports jax.
"""
import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def data_dir() -> pathlib.Path:
  """The folder filled by `../shared/data/fetch.sh DIR`.

  `WGAN_JAX_DATA_DIR` wins; otherwise `../shared/data` beside the checkout.
  """
  env = os.environ.get("WGAN_JAX_DATA_DIR")
  return pathlib.Path(env) if env else REPO.parent / "shared" / "data"


def require_data(relative: str) -> pathlib.Path:
  """Path of a fetched data file, or skip the test saying how to get it."""
  path = data_dir() / relative
  if not path.exists():
    pytest.skip(f"{path} is missing: run `bash ../shared/data/fetch.sh DIR` and "
                f"set WGAN_JAX_DATA_DIR=DIR")
  return path


def pytest_configure(config):
  """Compiled executables are cached on disk for the session.

  Many tests build identical steps from fresh Python objects (a new GAN per
  test); XLA's compilation of them is the bulk of the suite's CPU time, and
  the persistent cache keys on the computation itself, so each compiles once.
  """
  del config
  import jax  # pylint: disable=g-import-not-at-top
  cache = os.environ.get("WGAN_JAX_TEST_COMPILATION_CACHE",
                         str(REPO / ".pytest_cache" / "jax_compilation_cache"))
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
