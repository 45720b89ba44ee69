"""Specification of wgan_jax.plots: loss curves and critic landscapes."""

import jax
import numpy as np
import pytest

from wgan_jax import models
from wgan_jax import plots
from wgan_jax import run_logs
from wgan_jax import sampling


def _write_log(workdir, rows):
  writer = run_logs.MetricWriter(str(workdir))
  for step, scalars in rows:
    writer.write_scalars(step, scalars)
  writer.close()


def test_loss_plot_has_a_panel_per_logged_curve_with_its_values(tmp_path):
  losses = {"critic/loss": -1.0, "critic/wasserstein": 2.0,
            "critic/gradient_penalty": 0.1, "generator/loss": 0.5,
            "steps_per_sec": 9.0}
  _write_log(tmp_path, [
      (100, losses),
      (200, dict(losses, **{"critic/loss": float("nan")})),
      (300, dict(losses, **{"critic/loss": -3.0, "eval/fid": 80.0,
                            "eval/kid": 0.02, "eval/kid_std": 0.005})),
  ])
  figure = plots.plot_losses(run_logs.read_metrics(str(tmp_path)))
  panels = {ax.get_title(): ax.lines[0].get_xydata()
            for ax in figure.axes if ax.get_visible()}
  # Throughput is not a loss: no panel.
  assert sorted(panels) == sorted(["critic/loss", "critic/wasserstein",
                                   "critic/gradient_penalty", "generator/loss",
                                   "eval/fid", "eval/kid"])
  np.testing.assert_array_equal(panels["critic/loss"],
                                [[100, -1], [200, np.nan], [300, -3]])
  np.testing.assert_array_equal(panels["generator/loss"],
                                [[100, 0.5], [200, 0.5], [300, 0.5]])
  np.testing.assert_array_equal(panels["eval/fid"], [[300, 80.0]])
  # A std is a band on its curve's panel, not a panel of its own.
  bands = {ax.get_title(): len(ax.collections) for ax in figure.axes}
  assert bands["eval/kid"] == 1 and bands["eval/fid"] == 0
  *_, std = plots.loss_curves(
      run_logs.read_metrics(str(tmp_path)))["eval/kid"]
  np.testing.assert_array_equal(std, [0.005])


def test_loss_plot_of_a_log_without_losses_is_an_error(tmp_path):
  _write_log(tmp_path, [(1, {"steps_per_sec": 3.0})])
  with pytest.raises(ValueError, match="No curves to plot"):
    plots.plot_losses(run_logs.read_metrics(str(tmp_path)))


def _critic(seed=0):
  module = models.MLPCritic(width=8, layers=2)
  variables = module.init(jax.random.key(seed), np.zeros((1, 2), np.float32))
  return sampling.Critic(module=module, variables=variables, config=None,
                         data_shape=(2,), step=0)


def test_landscape_value_at_row_i_column_j_is_the_critic_at_x_j_y_i():
  critic = _critic()
  land = plots.critic_landscape(critic, half_width=1.5, resolution=4)
  np.testing.assert_allclose(land.xs, [-1.5, -0.5, 0.5, 1.5])
  np.testing.assert_allclose(land.ys, [-1.5, -0.5, 0.5, 1.5])
  assert land.values.shape == (4, 4)
  for i in range(4):
    for j in range(4):
      point = np.array([[land.xs[j], land.ys[i]]], np.float32)
      expected = critic.module.apply(critic.variables, point)[0]
      np.testing.assert_allclose(land.values[i, j], expected, rtol=1e-5,
                                 atol=1e-6)


def test_landscape_needs_a_critic_of_2d_points():
  critic = sampling.Critic(module=None, variables={}, config=None,
                           data_shape=(8, 8, 1), step=0)
  with pytest.raises(ValueError, match="2-D points"):
    plots.critic_landscape(critic, 1.0)


def test_landscape_figure_has_a_panel_per_step_and_renders_to_rgb():
  lands = [plots.critic_landscape(_critic(seed), 2.0, 16) for seed in (0, 1)]
  fakes = [np.zeros((5, 2)), np.ones((5, 2))]
  modes = np.array([[1.0, 0.0], [-1.0, 0.0]])
  figure = plots.plot_landscapes(lands, fakes, modes, modes,
                                 ["step 1", "step 2"])
  titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
  assert titles == ["step 1", "step 2"]
  pixels = plots.to_image(figure)
  width, height = figure.get_size_inches() * figure.dpi
  assert pixels.dtype == np.uint8
  assert pixels.shape == (round(height), round(width), 3)


def test_plot_runs_overlays_one_line_per_run_on_shared_panels():
  runs = {
      "float32": [{"step": 1, "critic/loss": 1.0, "generator/loss": 2.0},
                  {"step": 2, "critic/loss": 0.5, "generator/loss": 1.5}],
      "bfloat16": [{"step": 1, "critic/loss": 1.1}, {"step": 2, "critic/loss": 0.6}],
  }
  figure = plots.plot_runs(runs)
  panels = [ax for ax in figure.axes if ax.get_visible()]
  assert [ax.get_title() for ax in panels] == ["critic/loss", "generator/loss"]
  lines = {line.get_label(): line.get_ydata().tolist() for line in panels[0].get_lines()}
  assert lines == {"float32": [1.0, 0.5], "bfloat16": [1.1, 0.6]}
  assert [line.get_label() for line in panels[1].get_lines()] == ["float32"]


# ------------------------------------------------------ what the pixels show --
# These render the figure and look at its pixels, so they check what a reader
# sees (where a line is, how many panels there are), independently of which
# matplotlib calls drew it. Positions come from matplotlib's own transforms.

C0 = np.array([31, 119, 180])  # matplotlib's first line colour
C1 = np.array([255, 127, 14])  # and its second
ORANGE, GREEN = C1, np.array([44, 160, 44])  # tab:orange, tab:green


def _render(figure):
  """uint8 pixels as int [H, W, 3]; drawing also fixes the axes' extents."""
  return plots.to_image(figure).astype(int)


def _near(pixels, colour, tol=40):
  return np.abs(pixels - colour).sum(-1) < tol


def _pixel(figure, ax, x, y):
  """(row, column) in the rendered image of data point (x, y) of `ax`."""
  px, py = ax.transData.transform((x, y))
  height = figure.get_size_inches()[1] * figure.dpi
  return int(round(height - py)), int(round(px))


def _box(figure, ax):
  """Rows and columns (top, bottom, left, right) of `ax`'s frame."""
  box = ax.get_window_extent()
  height = figure.get_size_inches()[1] * figure.dpi
  return (int(height - box.y1), int(height - box.y0), int(box.x0),
          int(box.x1))


def _num_panel_frames(pixels):
  """Rectangles of dark (spine) pixels over 50 px in both directions.

  A panel's four spines touch, so each frame is one connected component;
  text and tick labels are small components of their own.
  """
  import scipy.ndimage  # pylint: disable=g-import-not-at-top
  labels, _ = scipy.ndimage.label((pixels < 128).all(-1))
  return sum(1 for rows, cols in scipy.ndimage.find_objects(labels)
             if rows.stop - rows.start > 50 and cols.stop - cols.start > 50)


def test_a_constant_curve_is_a_horizontal_line_across_the_panel_middle():
  records = [{"step": s, "critic/loss": 2.0} for s in range(100)]
  figure = plots.plot_losses(records)
  pixels = _render(figure)
  top, bottom, left, right = _box(figure, figure.axes[0])
  rows, cols = np.nonzero(_near(pixels, C0))
  assert len(rows) > 100  # The line is drawn.
  # Autoscaling centres a constant; a 1-point line covers at most 2 rows.
  assert rows.max() - rows.min() <= 1
  assert abs(rows.mean() - (top + bottom) / 2) <= 1.5
  # From the first step to the last: most of the panel's width.
  assert cols.max() - cols.min() > 0.85 * (right - left)
  assert left < cols.min() and cols.max() < right


def test_a_rising_curve_rises_in_the_picture():
  records = [{"step": s, "generator/loss": float(s)} for s in range(100)]
  figure = plots.plot_losses(records)
  pixels = _render(figure)
  ax = figure.axes[0]
  mask = _near(pixels, C0)
  for step in (10, 50, 90):
    row, col = _pixel(figure, ax, step, float(step))
    assert mask[row - 2:row + 3, col].any(), step
  # Nothing of the line at the mirrored height (a flipped or wrong axis).
  row, col = _pixel(figure, ax, 10, 90.0)
  assert not mask[row - 3:row + 4, col - 3:col + 4].any()


def test_nan_values_leave_a_gap_in_the_line():
  # A logged non-finite value (JSON null) is NaN: not drawn, and not joined
  # across (dropping it would draw a line through step 5; zeros a dip).
  rows = [{"step": s, "critic/loss": 1.0} for s in range(10)]
  rows[5]["critic/loss"] = None
  figure = plots.plot_losses(rows)
  pixels = _render(figure)
  ax = figure.axes[0]
  mask = _near(pixels, C0)
  top, bottom, _, _ = _box(figure, ax)
  row5, col5 = _pixel(figure, ax, 5, 1.0)
  _, col4 = _pixel(figure, ax, 4, 1.0)
  _, col6 = _pixel(figure, ax, 6, 1.0)
  gap = slice(col4 + (col5 - col4) // 2, col5 + (col6 - col5) // 2 + 1)
  assert not mask[top:bottom, gap].any()  # Nowhere in the panel's height.
  row2, col2 = _pixel(figure, ax, 2.5, 1.0)
  assert mask[row2 - 1:row2 + 2, col2].any()  # The line elsewhere.
  assert row2 == row5


@pytest.mark.parametrize("keys,panels", [
    (("critic/loss",), 1),
    (("critic/loss", "generator/loss", "steps_per_sec"), 2),
    (plots.LOSS_KEYS + ("eval/fid", "eval/kid", "eval/kid_std"), 6),
    (("generator/loss", "eval/fid", "eval/kid", "eval/kid_std"), 3),
])
def test_the_picture_has_one_panel_frame_per_curve(keys, panels):
  records = [{"step": s, **{k: float(s % 3 + i) for i, k in enumerate(keys)}}
             for s in range(20)]
  assert _num_panel_frames(_render(plots.plot_losses(records))) == panels


def test_a_std_is_a_band_of_plus_minus_one_std_around_its_curve():
  records = [{"step": s, "eval/kid": 0.5, "eval/kid_std": 0.1}
             for s in range(0, 100, 10)]
  records[0]["eval/kid"] = 0.0  # Two values, so the y axis has a scale.
  records[1]["eval/kid"] = 1.0
  figure = plots.plot_losses(records)
  pixels = _render(figure)
  ax = figure.axes[0]
  band = _near(pixels, 0.3 * C0 + 0.7 * 255, tol=30)  # alpha 0.3 on white
  row_mid, col = _pixel(figure, ax, 50, 0.5)
  row_hi, _ = _pixel(figure, ax, 50, 0.6)
  row_lo, _ = _pixel(figure, ax, 50, 0.4)
  column = np.nonzero(band[:, col])[0]
  assert abs(column.min() - row_hi) <= 1 and abs(column.max() - row_lo) <= 1
  assert not band[row_mid - 2 * (row_mid - row_hi), col]  # Not 2 std.


def test_overlaid_runs_draw_each_run_at_its_own_height():
  runs = {"a": [{"step": s, "critic/loss": 1.0} for s in range(60)],
          "b": [{"step": s, "critic/loss": 2.0} for s in range(60)]}
  figure = plots.plot_runs(runs)
  pixels = _render(figure)
  ax = figure.axes[0]
  for colour, value in ((C0, 1.0), (C1, 2.0)):
    counts = _near(pixels, colour).sum(1)  # The long line, not the legend.
    row, _ = _pixel(figure, ax, 30, value)
    assert abs(int(np.argmax(counts)) - row) <= 1, value
  assert _num_panel_frames(pixels) == 1


def test_landscape_is_darker_where_the_critic_is_higher_and_points_show():
  axis = np.linspace(-1.0, 1.0, 32, dtype=np.float32)
  # Rises with y only: rows (not columns) of the image must change.
  land = plots.Landscape(xs=axis, ys=axis.copy(),
                         values=np.repeat(axis[:, None], 32, axis=1))
  reals = np.array([[0.5, -0.5]])
  fakes = [np.array([[-0.5, 0.5]])]
  modes = np.array([[5.0, 5.0]])  # Outside the square: not drawn.
  figure = plots.plot_landscapes([land], fakes, reals, modes, ["t"])
  pixels = _render(figure)
  ax = figure.axes[0]
  top, bottom, left, right = _box(figure, ax)
  brightness = pixels.sum(-1)
  # A strip of the left half, clear of the points and of the legend.
  strip = brightness[top + 5:bottom - 5, left + 5:left + (right - left) // 5]
  row_means = strip.mean(1)
  assert row_means[0] < row_means[-1] - 200  # Top (high y) darker.
  assert np.all(np.diff(row_means) >= -1)  # Monotone in between.
  assert strip.std(1).max() < 10  # Constant along each row.
  for colour, (x, y), other in ((ORANGE, reals[0], fakes[0][0]),
                                (GREEN, fakes[0][0], reals[0])):
    row, col = _pixel(figure, ax, x, y)
    assert _near(pixels, colour)[row - 3:row + 4, col - 3:col + 4].any()
    row, col = _pixel(figure, ax, *other)
    assert not _near(pixels, colour)[row - 3:row + 4, col - 3:col + 4].any()
