"""Specification of configs/: every config is valid, states its seed's settings,
and trains (shrunk by ':smoke') on its own data source.

Real data comes from ../shared/data (skipped with the fetch command when
absent); CIFAR-10 cannot be obtained here, so its config trains on a
generated npz of the same layout.
"""

import importlib
import pathlib

import conftest
import numpy as np
import pytest
from PIL import Image

from wgan_jax import checkpointing
from wgan_jax import run_logs
from wgan_jax import train
from wgan_jax import validation

CONFIGS = sorted(p.stem for p in (conftest.REPO / "configs").glob("*.py")
                 if p.stem not in ("__init__", "default"))


def _load(name: str, arg: str | None = None):
  return importlib.import_module(f"configs.{name}").get_config(arg)


def test_every_config_is_listed():
  assert CONFIGS == ["animal_faces_acwgangp", "animal_faces_cwgangp",
                     "animal_faces_cwgangp_cpu",
                     "anime_dcgan", "anime_wgan", "anime_wgangp",
                     "anime_wgangp_cpu",
                     "cifar10_wgangp", "fashion_mnist_cwgangp",
                     "fashion_mnist_gan", "fashion_mnist_wgan",
                     "fashion_mnist_wgangp", "fashion_mnist_wgangp_cpu",
                     "toy_wgangp"]


@pytest.mark.parametrize("name", CONFIGS)
def test_full_config_is_valid_and_its_docstring_gives_its_command(name):
  config = _load(name)
  validation.validate(config)
  doc = importlib.import_module(f"configs.{name}").__doc__
  assert f"--config=configs/{name}.py" in doc
  # What to expect, measured (or that nothing was): cifar10 cannot be had.
  assert "Measured here" in doc or "tested on\ngenerated arrays only" in doc


def test_anime_wgan_is_seed_000():
  c = _load("anime_wgan")
  assert (c.loss, c.clip_value, c.n_critic, c.batch_size, c.num_train_steps) == (
      "wgan", 0.01, 5, 64, 20_000)
  assert (c.optimizer.name, c.optimizer.critic_learning_rate,
          c.optimizer.generator_learning_rate) == ("rmsprop", 5e-5, 5e-5)
  assert (c.model.z_dim, c.model.output_activation, c.data.image_size) == (
      128, "sigmoid", 64)
  assert c.model.name == "anime_wgan"


@pytest.mark.parametrize("name", ["anime_wgangp", "fashion_mnist_wgangp",
                                  "cifar10_wgangp"])
def test_gradient_penalty_configs_use_the_papers_settings(name):
  c = _load(name)
  assert (c.loss, c.gp_weight, c.n_critic, c.optimizer.name) == (
      "wgan-gp", 10.0, 5, "adam")
  assert c.optimizer.critic_learning_rate == 2e-4
  assert c.optimizer.b2 == 0.9
  assert c.model.critic_norm != "batch"


def _flat(config) -> dict:
  """{'n_critic': 5, 'ema.decay': 0.0, ...}: a config's fields, one level deep."""
  fields = {}
  for key, value in config.to_dict().items():
    if isinstance(value, dict):
      fields.update({f"{key}.{sub}": v for sub, v in value.items()})
    else:
      fields[key] = value
  return fields


# anime_wgangp_cpu.to_cpu_recipe, as its docstring states it.
_64X64_CPU_CHANGES = {
    "n_critic": 2, "ema.decay": 0.999, "num_train_steps": 6_000,
    "sample_every": 250, "checkpoint_every": 250,
    "model.name": "dcgan64_half"}
# A CPU recipe = its seed config plus the changes its docstring names.
CPU_RECIPES = {
    "animal_faces_cwgangp_cpu": ("animal_faces_cwgangp", _64X64_CPU_CHANGES),
    "anime_wgangp_cpu": ("anime_wgangp", _64X64_CPU_CHANGES),
    "fashion_mnist_wgangp_cpu": ("fashion_mnist_wgangp", {
        "batch_size": 32, "ema.decay": 0.999, "ema.warmup": True,
        "keep_checkpoints": 20}),
}


@pytest.mark.parametrize("name", sorted(CPU_RECIPES))
def test_cpu_recipe_changes_only_what_its_docstring_names(name):
  seed_name, changes = CPU_RECIPES[name]
  seed, cpu = _flat(_load(seed_name)), _flat(_load(name))
  changed = {k for k in seed if seed[k] != cpu[k]}
  # A preset swap changes many model.* fields; its name stands for them.
  model_swapped = "model.name" in changes
  assert {k for k in changed
          if not (model_swapped and k.startswith("model."))} == {
              k for k in changes if k != "model.name"}
  assert {k: cpu[k] for k in changes} == changes
  # The seed's loss, penalty and class conditioning stay.
  for field in ("num_classes", "generator_conditioning",
                "critic_conditioning"):
    assert cpu[f"model.{field}"] == seed[f"model.{field}"]
  assert (cpu["loss"], cpu["gp_weight"]) == ("wgan-gp", 10.0)


def test_conditional_configs_name_their_methods():
  fmnist = _load("fashion_mnist_cwgangp")
  assert (fmnist.model.num_classes, fmnist.model.critic_conditioning,
          fmnist.model.generator_conditioning) == (10, "projection", "cbn")
  assert fmnist.eval.classifier_test_split == "test"
  afhq = _load("animal_faces_cwgangp")
  assert (afhq.model.num_classes, afhq.model.critic_conditioning,
          afhq.data.image_size, afhq.model.critic_norm) == (3, "projection", 64,
                                                           "none")
  ac = _load("animal_faces_acwgangp")
  assert (ac.model.critic_conditioning, ac.model.generator_conditioning,
          ac.conditional.ac_weight, ac.conditional.ac_generator_weight) == (
              "ac", "concat", 1.0, 0.1)


@pytest.mark.parametrize("name", ["anime_dcgan", "fashion_mnist_gan"])
def test_dcgan_configs_update_the_discriminator_once_per_step(name):
  c = _load(name)
  assert (c.loss, c.n_critic) == ("dcgan", 1)


def _point_at_data(config, name: str, tmp_path: pathlib.Path) -> None:
  if name.startswith("anime"):
    config.data.path = str(conftest.require_data("anime_faces_64.zip"))
  elif name.startswith("fashion_mnist"):
    conftest.require_data("fashion-mnist/train-images-idx3-ubyte.gz")
    config.data.path = str(conftest.data_dir() / "fashion-mnist")
  elif name.startswith("animal_faces"):
    # Only AFHQ cats exist here: a generated folder in the AFHQ layout.
    rng = np.random.default_rng(0)
    for animal in ("cat", "dog", "wild"):
      (tmp_path / "afhq" / animal).mkdir(parents=True)
      for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
            tmp_path / "afhq" / animal / f"{i}.png")
    config.data.path = str(tmp_path / "afhq")
  elif name.startswith("cifar10"):
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3),
                                               dtype=np.uint8)
    np.savez(tmp_path / "cifar10.npz", x_train=images,
             y_train=np.arange(64) % 10)
    config.data.path = str(tmp_path / "cifar10.npz")


@pytest.mark.parametrize("name", CONFIGS)
def test_smoke_config_trains_on_its_data_source(name, tmp_path):
  config = _load(name, "smoke")
  _point_at_data(config, name, tmp_path)
  config.num_train_steps = 2
  workdir = str(tmp_path / "run")
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 2
  assert checkpointing.steps(workdir) == [2]
  record = run_logs.read_metrics(workdir)[-1]
  assert record["step"] == 2
  assert np.isfinite(record["critic/loss"]) and np.isfinite(
      record["generator/loss"])
