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
