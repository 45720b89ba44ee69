"""Specification of wgan_jax.validation: every config check, one message each."""

import ml_collections
import numpy as np
import pytest

from configs import default
from wgan_jax import presets
from wgan_jax import validation
from wgan_jax.errors import ConfigError


def _config():
  config = default.get_config()
  validation.validate(config)  # the default is valid
  return config


def test_the_schema_is_configs_default():
  assert validation.default_config().to_dict() == default.base_config().to_dict()


def test_a_misspelt_field_added_in_python_is_refused_with_a_suggestion():
  config = _config()
  config.n_critics = 3  # an unlocked ConfigDict accepts any new field
  with pytest.raises(ConfigError, match=r"config\.n_critics \(did you mean "
                     r"config\.n_critic\?\)"):
    validation.validate(config)
  config = _config()
  config.optimizer.critic_lr = 1e-4
  with pytest.raises(ConfigError, match="config.optimizer.critic_lr"):
    validation.validate(config)


def test_a_missing_field_is_refused():
  config = ml_collections.ConfigDict(_config().to_dict())
  del config.data["random_flip"]
  with pytest.raises(ConfigError, match="lacks config.data.random_flip"):
    validation.validate(config)


def test_a_value_of_the_wrong_kind_is_refused():
  config = _config()
  config.unlock()
  del config["n_critic"]
  config.n_critic = "5"
  with pytest.raises(ConfigError, match="config.n_critic='5' should be a number"):
    validation.validate(config)


def test_model_fields_are_checked_against_the_presets():
  config = _config()
  config.model.widht = 8
  with pytest.raises(ConfigError, match="config.model.widht"):
    validation.validate(config)


@pytest.mark.parametrize("field,value,match", [
    ("loss", "lsgan", "config.loss='lsgan' is not one of"),
    ("model.arch", "vit", "config.model.arch='vit' is not one of"),
    ("n_critic", 0, "config.n_critic must be >= 1"),
    ("data.resize", "squash", "config.data.resize='squash'"),
    ("data.channels", 2, "config.data.channels=2"),
    ("data.source", "imagenet", "config.data.source='imagenet' is not a known"),
    ("model.num_classes", 1, "one class is no condition"),
    ("model.num_classes", -2, "config.model.num_classes=-2"),
    ("model.critic_conditioning", "none", "config.model.critic_conditioning='none' is not one of"),
    ("model.generator_conditioning", "film", "config.model.generator_conditioning='film'"),
    ("conditional.fake_labels", "balanced", "config.conditional.fake_labels='balanced'"),
    ("conditional.ac_weight", -1.0, "config.conditional.ac_weight must be >= 0"),
    ("eval.num_samples", 1, "config.eval.num_samples .* must be >= 4"),
    ("eval.eval_every", -1, "config.eval.eval_every"),
    ("ema.standing_batches", -1, "config.ema.standing_batches=-1"),
    ("clip_value", 0.0, None),  # only refused for a clipping loss
])
def test_bad_values_are_refused(field, value, match):
  config = _config()
  *parents, leaf = field.split(".")
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = value
  if match is None:
    validation.validate(config)
    config.loss = "wgan"
    match = "config.loss='wgan' needs config.clip_value > 0"
  with pytest.raises(ConfigError, match=match):
    validation.validate(config)


def test_incompatible_pairs_are_refused():
  config = _config()
  config.model.critic_norm = "batch"
  with pytest.raises(ConfigError, match="per-sample gradient penalty"):
    validation.validate(config)
  config.loss = "dcgan"  # no penalty: batch norm is allowed
  validation.validate(config)
  config = _config()
  config.data.source = "toy:8gaussians"
  with pytest.raises(ConfigError, match="2-D points"):
    validation.validate(config)
  config.model = presets.model_config("mlp")
  validation.validate(config)
  config.data.random_flip = True
  with pytest.raises(ConfigError, match="random_flip=True needs images"):
    validation.validate(config)


@pytest.mark.parametrize("shape,match", [
    ((30, 30, 3), "4\\*2\\^n or 7\\*2\\^n"),
    ((32, 16, 3), "square images"),
    ((2,), "square images"),
])
def test_the_architecture_must_fit_the_data_shape(shape, match):
  config = _config()
  with pytest.raises(ConfigError, match=match):
    validation.check_data_shape(config, shape)
  validation.check_data_shape(config, (28, 28, 1))


def test_the_batch_must_split_over_devices_and_processes():
  validation.check_batch_size(64, 8, 2)
  with pytest.raises(ConfigError, match="does not split over 8 devices"):
    validation.check_batch_size(12, 8)
  with pytest.raises(ConfigError, match="does not split over 3 processes"):
    validation.check_batch_size(64, 4, 3)


def _facts(config, examples=None):
  examples = np.zeros((10, 4, 4, 1), np.uint8) if examples is None else examples
  return validation.math_facts(config, len(examples), examples.shape[1:],
                               validation.dataset_digest(examples, None))


def test_resume_facts_ignore_what_does_not_change_the_mathematics():
  config = _config()
  facts = _facts(config)
  for field, value in (("log_every", 7), ("checkpoint_every", 3),
                       ("num_train_steps", 10), ("critic_loop", "scan"),
                       ("keep_checkpoints", 9)):
    config[field] = value
  config.eval.num_samples = 100
  config.ema.standing_batches = 3  # how samples are drawn, not trained
  config.data.path = "/elsewhere"
  config.data.on_device = False
  validation.check_resume(facts, _facts(config), "W")


def test_resume_facts_name_what_changed():
  config = _config()
  facts = _facts(config)
  config.optimizer.schedule = "linear"
  with pytest.raises(ConfigError, match="optimizer.schedule: 'constant' -> 'linear'"):
    validation.check_resume(facts, _facts(config), "W")
  linear = _facts(config)
  config.num_train_steps = 5
  with pytest.raises(ConfigError, match="num_train_steps .*100000 -> 5"):
    validation.check_resume(linear, _facts(config), "W")
  config.ema.decay = 0.999
  ema = _facts(config)
  config.ema.warmup = True
  with pytest.raises(ConfigError, match="ema.warmup: False -> True"):
    validation.check_resume(ema, _facts(config), "W")
  other = np.ones((10, 4, 4, 1), np.uint8)
  with pytest.raises(ConfigError, match="the dataset's contents"):
    validation.check_resume(_facts(_config()), _facts(_config(), other), "W")


def test_a_run_saved_before_per_layer_kernel_sizes_resumes_only_without_them():
  config = _config()
  facts = _facts(config)
  for key in ("generator_kernel_sizes", "critic_kernel_sizes"):
    del facts["model"][key]  # as checkpoints written before the fields
  validation.check_resume(facts, _facts(config), "W")
  config.model.generator_kernel_sizes = (4, 4, 4, 4)
  with pytest.raises(ConfigError,
                     match=r"model.generator_kernel_sizes: \(\) -> \(4, 4, 4, 4\)"):
    validation.check_resume(facts, _facts(config), "W")


def test_saved_facts_from_json_compare_equal_to_fresh_ones():
  import json  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.model = presets.model_config("dcgan64")  # tuple fields
  facts = _facts(config)
  validation.check_resume(json.loads(json.dumps(facts)), facts, "W")


def test_the_dataset_digest_sees_labels_and_contents_at_any_size():
  rng = np.random.default_rng(0)
  big = rng.integers(0, 256, (5000, 8, 8, 1), dtype=np.uint8)
  labels = rng.integers(0, 3, 5000).astype(np.int32)
  digest = validation.dataset_digest(big, labels)
  assert validation.dataset_digest(big.copy(), labels.copy()) == digest
  assert validation.dataset_digest(big, None) != digest
  changed = big.copy()
  changed[0, 0, 0, 0] ^= 1  # example 0 is among the hashed ones
  assert validation.dataset_digest(changed, labels) != digest


def test_the_process_count_is_a_fact_only_for_runs_on_process_shards():
  config = _config()
  examples = np.zeros((10, 4, 4, 1), np.uint8)
  digest = validation.dataset_digest(examples, None)
  facts = lambda shards: validation.math_facts(  # noqa: E731
      config, 10, (4, 4, 1), digest, data_shards=shards)
  assert facts(1) == _facts(config)  # any process count of a whole-data run
  with pytest.raises(ConfigError, match="the process count of a config.data."
                     "shard_by_process run .*: 2 -> 4"):
    validation.check_resume(facts(2), facts(4), "W")
