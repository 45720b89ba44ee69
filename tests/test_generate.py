"""Specification of `python -m wgan_jax.generate` on tiny trained runs.

Two runs are trained once for the module: 4 Fashion-MNIST steps with a sample
grid after every step, and 4 toy steps with checkpoints at steps 2 and 4.
"""

import os
import subprocess
import sys

import conftest
import jax
import numpy as np
import pytest
from absl import app
from absl import flags

from configs import fashion_mnist_wgangp
from configs import toy_wgangp
from wgan_jax import checkpointing
from wgan_jax import data as data_lib
from wgan_jax import generate
from wgan_jax import images
from wgan_jax import plots
from wgan_jax import run_logs
from wgan_jax import sampling
from wgan_jax import train
from wgan_jax import train_step

CELL = (28, 28)  # Fashion-MNIST
ERRORS = (generate.ArgumentError, FileNotFoundError)


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
  """(workdir, config) of a 4-step run with grids at steps 1..4."""
  conftest.require_data("fashion-mnist/train-images-idx3-ubyte.gz")
  config = fashion_mnist_wgangp.get_config("smoke")
  config.data.path = str(conftest.data_dir() / "fashion-mnist")
  config.num_train_steps = 4
  config.sample_every = 1
  workdir = str(tmp_path_factory.mktemp("fashion"))
  train.train_and_evaluate(config, workdir)
  return workdir, config


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
  """(workdir, config) of a 4-step 8-Gaussians run, checkpoints at 2 and 4."""
  config = toy_wgangp.get_config("smoke")
  config.model.width = 16
  workdir = str(tmp_path_factory.mktemp("toy"))
  train.train_and_evaluate(config, workdir)
  return workdir, config


def _cell(grid, row, column, rows, columns, size=CELL):
  """Cell (row, column) of a rows x columns grid, found from the bottom-right
  corner, which row labels (left) and captions (top) do not move."""
  h, w = size
  top = grid.shape[0] - (rows - row) * (h + images.BORDER)
  left = grid.shape[1] - (columns - column) * (w + images.BORDER)
  return grid[top:top + h, left:left + w]


def _grid_shape(rows, columns, size=CELL):
  return (rows * (size[0] + images.BORDER) + images.BORDER,
          columns * (size[1] + images.BORDER) + images.BORDER)


@pytest.mark.parametrize("truncation", [None, 0.5])
def test_grid_holds_the_samples_of_the_seed_in_grayscale(fashion, tmp_path,
                                                         truncation):
  workdir, _ = fashion
  out = str(tmp_path / "grid.png")
  assert generate.run("grid", workdir, out, num=5, seed=3, columns=3,
                      truncation=truncation) == [out]
  grid = images.read_png(out)
  assert grid.shape == _grid_shape(2, 3) + (1,)
  generator = sampling.load_generator(workdir)
  expected = sampling.sample(
      generator, sampling.noise(generator, 5, seed=3, truncation=truncation))
  for i in range(5):
    np.testing.assert_array_equal(_cell(grid, i // 3, i % 3, 2, 3), expected[i])
  # The sixth cell is empty: white.
  assert np.all(_cell(grid, 1, 2, 2, 3) == images.BACKGROUND)


def test_grid_individual_writes_a_folder_of_the_grid_and_each_sample(
    fashion, tmp_path):
  workdir, _ = fashion
  out = tmp_path / "samples"
  written = generate.run("grid", workdir, str(out), num=3, individual=True)
  assert sorted(os.listdir(out)) == ["grid.png", "sample_0000.png",
                                     "sample_0001.png", "sample_0002.png"]
  assert sorted(written) == sorted(str(out / f) for f in os.listdir(out))
  grid = images.read_png(str(out / "grid.png"))
  for i in range(3):
    sample = images.read_png(str(out / f"sample_{i:04d}.png"))
    assert sample.shape == CELL + (1,)
    np.testing.assert_array_equal(sample, _cell(grid, i // 2, i % 2, 2, 2))


@pytest.mark.parametrize("dims", [None, (2, 7)])
def test_sweep_moves_two_components_and_its_middle_is_the_unmodified_vector(
    fashion, tmp_path, dims):
  workdir, _ = fashion
  out = str(tmp_path / "sweep.png")
  generate.run("sweep", workdir, out, seed=4,
               **({} if dims is None else {"dims": dims}))
  sweep = images.read_png(out)
  rows, columns = _grid_shape(11, 11)
  assert sweep.shape[0] == rows + images.CAPTION_HEIGHT
  assert sweep.shape[1] > columns and sweep.shape[2] == 1  # + row labels
  generator = sampling.load_generator(workdir)
  z = np.asarray(sampling.noise(generator, 1, seed=4))[0]
  i, j = (0, generator.z_dim - 1) if dims is None else dims
  # Rows move z[i] from -1 to +1, columns z[j]; the middle moves nothing.
  corners = {(5, 5): (0.0, 0.0), (0, 10): (-1.0, 1.0), (10, 0): (1.0, -1.0)}
  for (row, column), (di, dj) in corners.items():
    moved = z.copy()
    moved[i] += di
    moved[j] += dj
    np.testing.assert_array_equal(_cell(sweep, row, column, 11, 11),
                                  sampling.sample(generator, moved[None])[0])


def test_interpolation_rows_start_and_end_at_the_endpoint_samples(
    fashion, tmp_path):
  workdir, _ = fashion
  out = str(tmp_path / "interpolate.png")
  generate.run("interpolate", workdir, out, seed_a=1, seed_b=2, rows=2,
               columns=5)
  grid = images.read_png(out)
  assert grid.shape[0] == _grid_shape(4, 5)[0] and grid.shape[2] == 1
  generator = sampling.load_generator(workdir)
  z_a = np.asarray(sampling.noise(generator, 2, seed=1))
  z_b = np.asarray(sampling.noise(generator, 2, seed=2))
  starts = sampling.sample(generator, z_a)
  ends = sampling.sample(generator, z_b)
  for pair in range(2):
    for row, method in ((2 * pair, "linear"), (2 * pair + 1, "spherical")):
      np.testing.assert_array_equal(_cell(grid, row, 0, 4, 5), starts[pair])
      np.testing.assert_array_equal(_cell(grid, row, 4, 4, 5), ends[pair])
      middle = sampling.interpolate(z_a[pair], z_b[pair], 5, method)[2]
      np.testing.assert_array_equal(_cell(grid, row, 2, 4, 5),
                                    sampling.sample(generator, middle[None])[0])


def test_interpolation_endpoints_from_npy_files(fashion, tmp_path):
  workdir, _ = fashion
  generator = sampling.load_generator(workdir)
  z_a = np.random.default_rng(0).normal(size=(3, generator.z_dim))
  np.save(tmp_path / "a.npy", z_a.astype(np.float32))
  out = str(tmp_path / "interpolate.png")
  generate.run("interpolate", workdir, out, z_a=str(tmp_path / "a.npy"),
               seed_b=5, columns=3)
  grid = images.read_png(out)
  assert grid.shape[0] == _grid_shape(6, 3)[0]  # 3 pairs from the file
  starts = sampling.sample(generator, z_a.astype(np.float32))
  ends = sampling.sample(generator, sampling.noise(generator, 3, seed=5))
  for pair in range(3):
    np.testing.assert_array_equal(_cell(grid, 2 * pair + 1, 0, 6, 3),
                                  starts[pair])
    np.testing.assert_array_equal(_cell(grid, 2 * pair + 1, 2, 6, 3),
                                  ends[pair])


def test_gif_has_one_frame_per_saved_grid_in_step_order(fashion, tmp_path):
  workdir, _ = fashion
  out = str(tmp_path / "training.gif")
  generate.run("gif", workdir, out)
  frames = images.read_gif(out)
  grids = [images.read_png(run_logs.sample_path(workdir, s)) for s in (1, 2, 3, 4)]
  assert frames.shape == (4, grids[0].shape[0] + images.CAPTION_HEIGHT) + (
      grids[0].shape[1:])
  for frame, grid in zip(frames, grids):
    np.testing.assert_array_equal(frame[images.CAPTION_HEIGHT:], grid)
  # Each frame names its step: the strips differ.
  strips = {frame[:images.CAPTION_HEIGHT].tobytes() for frame in frames}
  assert len(strips) == 4


def test_gif_orders_frames_by_step_number_not_by_name(tmp_path):
  # Hand-made grids at steps 900, 80, 1000: only the number gives the order.
  rng = np.random.default_rng(0)
  grids = {s: rng.integers(0, 256, (10, 12, 3), np.uint8)
           for s in (900, 80, 1000)}
  for step, grid in grids.items():
    path = tmp_path / run_logs.SAMPLES_DIR / f"step_{step}.png"
    images.save_png(str(path), grid)
  out = str(tmp_path / "training.gif")
  generate.run("gif", str(tmp_path), out)
  frames = images.read_gif(out)
  assert len(frames) == 3
  for frame, step in zip(frames, (80, 900, 1000)):
    np.testing.assert_array_equal(frame[images.CAPTION_HEIGHT:], grids[step])


def test_gif_every_k_keeps_every_kth_grid_counted_back_from_the_last(fashion, tmp_path):
  workdir, _ = fashion
  out = str(tmp_path / "training.gif")
  generate.run("gif", workdir, out, every=2)
  frames = images.read_gif(out)
  assert len(frames) == 2  # steps 2 and 4 of 1..4
  for frame, step in zip(frames, (2, 4)):
    np.testing.assert_array_equal(frame[images.CAPTION_HEIGHT:],
                                  images.read_png(run_logs.sample_path(workdir, step)))


def test_losses_writes_the_plot_of_metrics_jsonl(fashion, tmp_path):
  workdir, _ = fashion
  out = str(tmp_path / "losses.png")
  generate.run("losses", workdir, out)
  written = images.read_png(out)
  assert written.ndim == 3 and written.shape[-1] == 3
  records = run_logs.read_metrics(workdir)
  expected = plots.to_image(
      plots.plot_losses(records, os.path.basename(workdir)))
  np.testing.assert_array_equal(written, expected)


def test_real_shows_training_images_and_the_dataset_mean(fashion, tmp_path):
  workdir, config = fashion
  out = str(tmp_path / "real.png")
  generate.run("real", workdir, out, num=3, columns=2, seed=1)
  grid = images.read_png(out)
  # 3 real images in 2 rows of 2, then the mean on a row of its own.
  assert grid.shape[0] == _grid_shape(3, 2)[0] and grid.shape[2] == 1
  examples = data_lib.load_dataset(config.data, seed=config.seed).examples
  reals = [_cell(grid, i // 2, i % 2, 3, 2) for i in range(3)]
  for real in reals:
    assert np.any(np.all(examples == real, axis=(1, 2, 3)))
  assert len({r.tobytes() for r in reals}) == 3
  assert np.all(_cell(grid, 1, 1, 3, 2) == images.BACKGROUND)
  mean = np.round(examples.astype(np.float64).mean(axis=0)).astype(np.uint8)
  np.testing.assert_array_equal(_cell(grid, 2, 0, 3, 2), mean)


def _critic_on_points(workdir, config, step, points):
  """The critic of checkpoint `step` on points [N, 2], via the full state."""
  gan = train_step.create_gan(config, (2,))
  abstract = jax.eval_shape(lambda: train_step.create_train_state(gan))
  state, _ = checkpointing.Checkpointer(workdir).restore(abstract, step)
  return np.asarray(gan.critic.apply(state.critic.variables, points))


def test_landscape_values_are_the_critic_of_that_step_on_the_grid(toy):
  workdir, config = toy
  land = plots.critic_landscape(sampling.load_critic(workdir, step=2),
                                half_width=2.0, resolution=5)
  np.testing.assert_allclose(land.xs, [-2, -1, 0, 1, 2])
  np.testing.assert_allclose(land.ys, [-2, -1, 0, 1, 2])
  points = np.array([(x, y) for y in land.ys for x in land.xs], np.float32)
  expected = _critic_on_points(workdir, config, 2, points).reshape(5, 5)
  np.testing.assert_allclose(land.values, expected, rtol=1e-5, atol=1e-6)
  # Step 4's critic is another function: the step was honoured.
  later = _critic_on_points(workdir, config, 4, points).reshape(5, 5)
  assert not np.allclose(later, expected)


def test_landscape_writes_one_panel_or_one_gif_frame_per_step(toy, tmp_path):
  workdir, _ = toy
  one = images.read_png(generate.run("landscape", workdir,
                                     str(tmp_path / "l.png"), step=2)[0])
  every = images.read_png(generate.run("landscape", workdir,
                                       str(tmp_path / "all.png"),
                                       all_steps=True)[0])
  assert one.shape[-1] == every.shape[-1] == 3
  assert every.shape[0] == one.shape[0] and every.shape[1] > one.shape[1]
  frames = images.read_gif(generate.run("landscape", workdir,
                                        str(tmp_path / "all.gif"),
                                        all_steps=True)[0])
  assert frames.shape == (2,) + one.shape


# (mode, workdir fixture, options, fragment of the one-line message)
BAD_ARGUMENTS = {
    "no checkpoint": ("grid", "empty", {}, "No checkpoint in"),
    "unknown step": ("grid", "fashion", {"step": 3},
                     r"No checkpoint for step 3 .*saved steps: \[2, 4\]"),
    "unknown mode": ("grids", "fashion", {},
                     "Unknown mode 'grids'; use one of"),
    "no such workdir": ("grid", "missing", {}, "is not a folder"),
    "flag of another mode": ("grid", "fashion", {"dims": (1, 2)},
                             "--dims does not apply to grid"),
    "step for gif": ("gif", "fashion", {"step": 2}, "--step does not apply"),
    "label on unconditional run": ("grid", "fashion", {"label": 0},
                                   "--label=0: .* unconditional"),
    "sweep dims out of range": ("sweep", "fashion", {"dims": (0, 100)},
                                r"--dims=0,100: .*\[0, 100\)"),
    "sweep dims equal": ("sweep", "fashion", {"dims": (3, 3)}, "--dims=3,3"),
    "bad extension": ("grid", "fashion", {"out": "x.jpg"},
                      r"--out=\S*x\.jpg: grid writes \.png"),
    "individual into a file": ("grid", "fashion",
                               {"out": "x.png", "individual": True},
                               "--out is a folder"),
    "num zero": ("grid", "fashion", {"num": 0}, "--num must be > 0"),
    "truncation zero": ("grid", "fashion", {"truncation": 0.0},
                        "--truncation must be > 0"),
    "one-point interpolation": ("interpolate", "fashion", {"columns": 1},
                                "needs >= 2 points"),
    "rows disagree with file": ("interpolate", "fashion",
                                {"rows": 2, "z_a": "a.npy"},
                                "--rows=2 but --z_a"),
    "landscape of an image run": ("landscape", "fashion", {},
                                  "2-D toy data.*image run"),
    "gif without grids": ("gif", "toy", {"out": "x.gif"}, "No sample grids"),
    "images of a toy run": ("grid", "toy", {}, "use the landscape mode"),
    "real of a toy run": ("real", "toy", {}, "2-D points"),
    "step and all_steps": ("landscape", "toy", {"step": 2, "all_steps": True},
                           "--step or --all_steps, not both"),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=list(BAD_ARGUMENTS))
def test_bad_arguments_give_one_clear_error(case, fashion, toy, tmp_path):
  mode, where, options, message = BAD_ARGUMENTS[case]
  workdir = {"fashion": fashion[0], "toy": toy[0], "empty": str(tmp_path),
             "missing": str(tmp_path / "missing")}[where]
  np.save(tmp_path / "a.npy", np.zeros((3, fashion[1].model.z_dim), np.float32))
  options = dict(options)
  out = str(tmp_path / options.pop("out", "out.png"))
  if "z_a" in options:
    options["z_a"] = str(tmp_path / options["z_a"])
  with pytest.raises(ERRORS, match=message) as error:
    generate.run(mode, workdir, out, **options)
  assert "\n" not in str(error.value)
  assert not os.path.exists(out)


@pytest.fixture
def parse_flags():
  """Parses a command line into absl FLAGS for main(); undone afterwards."""
  def parse(*args):
    return flags.FLAGS(["generate", *args])
  yield parse
  flags.FLAGS.unparse_flags()


def test_main_parses_dims_and_runs_the_mode(fashion, tmp_path, parse_flags,
                                            capsys):
  workdir, _ = fashion
  out = str(tmp_path / "cli.png")
  generate.main(parse_flags(f"--workdir={workdir}", f"--out={out}",
                            "--dims=1,2", "--seed=3", "sweep"))
  assert capsys.readouterr().out == f"Wrote {out}\n"
  generate.run("sweep", workdir, str(tmp_path / "api.png"), dims=(1, 2), seed=3)
  np.testing.assert_array_equal(images.read_png(out),
                                images.read_png(str(tmp_path / "api.png")))


def test_main_reports_errors_as_one_line_without_traceback(
    fashion, tmp_path, parse_flags, capsys):
  workdir, _ = fashion
  argv = parse_flags(f"--workdir={workdir}", f"--out={tmp_path}/x.png",
                     "--dims=a,b", "sweep")
  with pytest.raises(SystemExit) as exit_:
    generate.main(argv)
  assert exit_.value.code == 1
  message = capsys.readouterr().err.rstrip("\n")
  assert message.startswith("generate sweep: error: --dims=a,b: ")
  assert "two integers" in message and "\n" not in message
  with pytest.raises(app.UsageError, match="exactly one MODE"):
    generate.main(["generate"])


def test_command_line_error_is_one_line_and_exit_status_1(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  proc = subprocess.run(
      [sys.executable, "-m", "wgan_jax.generate", f"--workdir={tmp_path}",
       f"--out={tmp_path}/x.png", "grid"], cwd=conftest.REPO, env=env,
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert proc.stdout == ""
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr
  assert lines[0].startswith(
      f"generate grid: error: No checkpoint in {tmp_path}")


# ------------------------------------------------------- class-conditional --


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
  """(workdir, config) of a 2-step class-conditional Fashion-MNIST run."""
  from configs import fashion_mnist_cwgangp  # pylint: disable=g-import-not-at-top
  conftest.require_data("fashion-mnist/train-images-idx3-ubyte.gz")
  config = fashion_mnist_cwgangp.get_config("smoke")
  config.data.path = str(conftest.data_dir() / "fashion-mnist")
  config.num_train_steps = 2
  workdir = str(tmp_path_factory.mktemp("conditional"))
  train.train_and_evaluate(config, workdir)
  return workdir, config


def test_label_makes_every_sample_of_that_class(conditional, tmp_path):
  workdir, _ = conditional
  out = str(tmp_path / "grid.png")
  generate.run("grid", workdir, out, num=4, seed=3, columns=4, label=7)
  generator = sampling.load_generator(workdir)
  z = sampling.noise(generator, 4, seed=3)
  expected = sampling.sample(generator, z, np.full(4, 7))
  np.testing.assert_array_equal(images.read_png(out),
                                images.make_grid(expected, 4))
  # Another class is another picture from the same noise.
  assert not np.array_equal(expected, sampling.sample(generator, z, 2))


def test_without_label_grid_sweep_and_interpolate_draw_a_row_per_class(
    conditional, tmp_path):
  workdir, _ = conditional
  generator = sampling.load_generator(workdir)
  names = list(data_lib.FASHION_MNIST_CLASSES)
  grid = images.read_png(generate.run("grid", workdir, str(tmp_path / "g.png"),
                                      seed=1, columns=3)[0])
  z = sampling.noise(generator, 3, seed=1)
  rows, labels, _ = sampling.class_rows(z, 10)
  np.testing.assert_array_equal(
      grid, images.make_grid(sampling.sample(generator, rows, labels), 3, names))
  # sweep: both --dims moved together along each row (the sweep's diagonal).
  z = np.asarray(sampling.noise(generator, 1, seed=0))[0]
  offsets = generate.SWEEP_OFFSETS
  diagonal = sampling.latent_sweep(z, (0, generator.z_dim - 1), offsets)[
      np.arange(len(offsets)), np.arange(len(offsets))]
  # interpolate: the first pair's linear path (--seed_a 0, --seed_b 1).
  path = sampling.interpolate(np.asarray(sampling.noise(generator, 4, 0))[0],
                              np.asarray(sampling.noise(generator, 4, 1))[0], 5)
  for mode, walk, options in (("sweep", diagonal, {}),
                              ("interpolate", path, {"columns": 5})):
    picture = images.read_png(generate.run(mode, workdir,
                                           str(tmp_path / f"{mode}.png"),
                                           **options)[0])
    for k in (0, 9):  # row k is class k
      expected = sampling.sample(generator, walk, k)
      for c in (0, len(walk) - 1):
        np.testing.assert_array_equal(
            _cell(picture, k, c, 10, len(walk)), expected[c])


def test_a_label_out_of_range_is_one_clear_error(conditional, tmp_path):
  with pytest.raises(generate.ArgumentError,
                     match=r"--label=10: .* has 10 classes; use 0 \.\. 9 "
                           r"\(0=T-shirt/top"):
    generate.run("grid", conditional[0], str(tmp_path / "x.png"), label=10)
  generator = sampling.load_generator(conditional[0])
  with pytest.raises(sampling.LabelError, match="class-conditional"):
    sampling.sample(generator, sampling.noise(generator, 2))
