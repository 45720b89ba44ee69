"""Specification of class conditioning: the label reaches each network as its
method says, the projection and classifier terms are their definitions, and
the train step pairs labels as the papers do."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from wgan_jax import conditioning
from wgan_jax import losses
from wgan_jax import models
from wgan_jax import parallel
from wgan_jax import presets
from wgan_jax import train_step
from wgan_jax import validation
from wgan_jax.errors import ConfigError

IMAGE_SHAPE = (16, 16, 3)
NUM_CLASSES = 3


def _model(generator="cbn", critic="projection", preset="dcgan", **overrides):
  return presets.model_config(
      preset, **{"width": 4, "z_dim": 8, "num_classes": NUM_CLASSES,
                 "generator_conditioning": generator,
                 "critic_conditioning": critic, **overrides})


def _perturbed(variables, seed=0):
  """Every parameter moved by N(0, 0.3): at init cBN is plain BN (scale 1,
  shift 0) for every class, so a test of label use must move it."""
  leaves, tree = jax.tree.flatten(variables["params"])
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  moved = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
  return dict(variables, params=jax.tree.unflatten(tree, moved))


@pytest.mark.parametrize("method", conditioning.GENERATOR_CHOICES)
def test_changing_only_the_label_changes_the_generated_image(method):
  generator, _ = models.create_models(_model(generator=method), IMAGE_SHAPE)
  z = jax.random.normal(jax.random.key(0), (4, 8))
  y = jnp.array([0, 1, 2, 0], jnp.int32)
  variables = _perturbed(models.init_variables(generator, jax.random.key(1),
                                               z, y))
  a = generator.apply(variables, z, y, train=False)
  b = generator.apply(variables, z, (y + 1) % NUM_CLASSES, train=False)
  assert np.all(np.abs(np.asarray(a - b)).reshape(4, -1).max(1) > 1e-4)
  # Same label, same image: the difference is the label's alone.
  np.testing.assert_array_equal(a, generator.apply(variables, z, y, train=False))


@pytest.mark.parametrize("method", ["projection", "concat"])
def test_changing_only_the_label_changes_the_critic_score(method):
  _, critic = models.create_models(_model(critic=method), IMAGE_SHAPE)
  x = jax.random.normal(jax.random.key(0), (4,) + IMAGE_SHAPE)
  y = jnp.array([0, 1, 2, 0], jnp.int32)
  variables = _perturbed(models.init_variables(critic, jax.random.key(1), x, y))
  a = critic.apply(variables, x, y)
  b = critic.apply(variables, x, (y + 1) % NUM_CLASSES)
  assert a.shape == (4,) and np.all(np.abs(np.asarray(a - b)) > 1e-5)


def test_the_auxiliary_classifier_never_sees_the_label():
  _, critic = models.create_models(_model(critic="ac"), IMAGE_SHAPE)
  x = jax.random.normal(jax.random.key(0), (4,) + IMAGE_SHAPE)
  y = jnp.array([0, 1, 2, 0], jnp.int32)
  variables = _perturbed(models.init_variables(critic, jax.random.key(1), x, y))
  scores, logits = critic.apply(variables, x, y)
  assert scores.shape == (4,) and logits.shape == (4, NUM_CLASSES)
  for other in ((y + 1) % NUM_CLASSES, None):
    s2, l2 = critic.apply(variables, x, other)
    np.testing.assert_array_equal(scores, s2)
    np.testing.assert_array_equal(logits, l2)
  # The head reads the image's features: another image, other logits.
  _, l3 = critic.apply(variables, -x, y)
  assert np.abs(np.asarray(l3 - logits)).max() > 1e-4
  # No layer of the critic takes the label.
  assert not {"projection", "label_planes"} & set(variables["params"])


def test_the_projection_term_is_its_definition_on_a_hand_built_critic():
  # MLP critic with one hidden layer: phi(x) = relu(W x + b), and
  # D(x, y) = v . phi(x) + c + E[y] . phi(x) (Miyato & Koyama 2018, eq. 3).
  model = _model(critic="projection", generator="concat", preset="mlp",
                 width=5, mlp_layers=1)
  _, critic = models.create_models(model, (2,))
  x = np.array([[0.5, -1.0], [2.0, 0.25], [-0.3, 0.7]], np.float32)
  y = np.array([2, 0, 1], np.int32)
  params = _perturbed(models.init_variables(critic, jax.random.key(0), x, y))[
      "params"]
  w, b = np.asarray(params["Dense_0"]["kernel"]), np.asarray(params["Dense_0"]["bias"])
  v, c = np.asarray(params["Dense_1"]["kernel"])[:, 0], float(params["Dense_1"]["bias"][0])
  embed = np.asarray(params["projection"]["embedding"])
  phi = np.maximum(x @ w + b, 0.0)
  expected = phi @ v + c + np.sum(embed[y] * phi, axis=1)
  got = critic.apply({"params": params}, x, y)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_conditional_batch_norm_is_batch_norm_with_a_scale_and_shift_per_class():
  norm = conditioning.ConditionalBatchNorm(NUM_CLASSES, 0.9, 1e-5)
  x = jax.random.normal(jax.random.key(0), (6, 2, 2, 4)) * 3 + 1
  y = jnp.array([0, 1, 2, 0, 1, 2], jnp.int32)
  variables = norm.init(jax.random.key(1), x, y, train=True)
  gamma = jax.random.normal(jax.random.key(2), (NUM_CLASSES, 4))
  beta = jax.random.normal(jax.random.key(3), (NUM_CLASSES, 4))
  params = {"scale": {"embedding": gamma}, "shift": {"embedding": beta}}
  out, _ = norm.apply({"params": params, "batch_stats": variables["batch_stats"]},
                      x, y, train=True, mutable=["batch_stats"])
  xn = np.asarray(x)
  mean, var = xn.mean(axis=(0, 1, 2)), xn.var(axis=(0, 1, 2))
  normalized = (xn - mean) / np.sqrt(var + 1e-5)
  expected = normalized * np.asarray(gamma)[y][:, None, None] + np.asarray(
      beta)[y][:, None, None]
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
  # At initialization it is plain batch norm for every class.
  plain, _ = norm.apply(variables, x, y, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(plain, normalized, rtol=1e-4, atol=1e-4)


def test_unconditional_networks_keep_their_parameters_and_refuse_labels():
  for name in ("dcgan", "resnet32", "mlp"):
    shape = (2,) if name == "mlp" else (32, 32, 3)
    model = presets.model_config(name, width=4)
    generator, critic = models.create_models(model, shape)
    assert generator.conditioning == critic.conditioning == "none"
  generator, critic = models.create_models(presets.model_config("dcgan", width=4),
                                           IMAGE_SHAPE)
  x = jnp.zeros((2,) + IMAGE_SHAPE)
  variables = models.init_variables(critic, jax.random.key(0), x)
  with pytest.raises(ValueError, match="unconditional"):
    critic.apply(variables, x, jnp.zeros(2, jnp.int32))
  _, conditional = models.create_models(_model(), IMAGE_SHAPE)
  with pytest.raises(ValueError, match="class-conditional"):
    conditional.init(jax.random.key(0), x, None)


# ----------------------------------------------------------- train step --


def _config(generator="cbn", critic="projection", batch_size=8, **conditional):
  config = default.get_config()
  config.batch_size = batch_size
  config.n_critic = 2
  config.num_train_steps = 100
  config.model = _model(generator, critic)
  config.optimizer.eps = 1e-3
  config.optimizer.critic_learning_rate = 1e-3
  config.optimizer.generator_learning_rate = 1e-3
  config.conditional.update(conditional)
  validation.validate(config)
  return config


def _batch(config, seed=0):
  rng = np.random.default_rng(seed)
  shape = (config.n_critic, config.batch_size)
  return {"image": rng.integers(0, 256, shape + IMAGE_SHAPE, dtype=np.uint8),
          "label": rng.integers(0, NUM_CLASSES, shape).astype(np.int32)}


def test_the_classifier_term_enters_the_generator_loss_with_its_weight():
  config = _config(critic="ac", ac_generator_weight=0.25)
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  state = train_step.create_train_state(gan)
  z = jax.random.normal(jax.random.key(0), (8, 8))
  y = jnp.arange(8, dtype=jnp.int32) % NUM_CLASSES
  loss, (metrics, _) = train_step.generator_objective(
      gan, state.generator.params, state.generator.batch_stats, state.critic,
      z, y)
  # Independently: the critic on the generator's images, cross-entropy by hand.
  fake, _ = gan.generator.apply(state.generator.variables, z, y, train=True,
                                mutable=["batch_stats"])
  scores, logits = gan.critic.apply({"params": state.critic.params}, fake)
  log_p = np.asarray(jax.nn.log_softmax(logits))
  cross_entropy = -np.mean(log_p[np.arange(8), np.asarray(y)])
  np.testing.assert_allclose(metrics["generator/classifier_loss"],
                             cross_entropy, rtol=1e-5)
  np.testing.assert_allclose(loss, -np.mean(scores) + 0.25 * cross_entropy,
                             rtol=1e-5)


@pytest.mark.parametrize("classify_fakes", [False, True])
def test_the_critic_classifies_real_images_and_fakes_only_if_asked(classify_fakes):
  config = _config(critic="ac", ac_weight=2.0, ac_classify_fakes=classify_fakes)
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  state = train_step.create_train_state(gan)
  real = jax.random.uniform(jax.random.key(0), (8,) + IMAGE_SHAPE) * 2 - 1
  fake = jax.random.uniform(jax.random.key(1), (8,) + IMAGE_SHAPE) * 2 - 1
  eps = jax.random.uniform(jax.random.key(2), (8,))
  y_real = jnp.arange(8, dtype=jnp.int32) % NUM_CLASSES
  y_fake = (y_real + 1) % NUM_CLASSES
  loss, (metrics, _) = train_step.critic_objective(
      gan, state.critic.params, state.critic.batch_stats, real, fake, eps,
      y_real, y_fake)
  critic = lambda x: gan.critic.apply({"params": state.critic.params}, x)  # noqa: E731
  (d_real, l_real), (d_fake, l_fake) = critic(real), critic(fake)
  classification = losses.class_cross_entropy(l_real, y_real)
  if classify_fakes:
    classification += losses.class_cross_entropy(l_fake, y_fake)
  penalty, _ = losses.gradient_penalty(
      lambda x: critic(x)[0], real, fake, eps)
  expected = (jnp.mean(d_fake) - jnp.mean(d_real) + 10.0 * penalty
              + 2.0 * classification)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(metrics["critic/classifier_loss"], classification,
                             rtol=1e-5)


def test_the_penalty_is_taken_with_the_labels_of_the_real_images():
  config = _config(critic="projection")
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  state = train_step.create_train_state(gan)
  params = _perturbed({"params": state.critic.params})["params"]
  real = jax.random.uniform(jax.random.key(0), (8,) + IMAGE_SHAPE) * 2 - 1
  fake = jax.random.uniform(jax.random.key(1), (8,) + IMAGE_SHAPE) * 2 - 1
  eps = jax.random.uniform(jax.random.key(2), (8,))
  y_real = jnp.arange(8, dtype=jnp.int32) % NUM_CLASSES
  y_fake = (y_real + 1) % NUM_CLASSES
  _, (metrics, _) = train_step.critic_objective(gan, params, {}, real, fake,
                                                eps, y_real, y_fake)
  def penalty(labels):
    return losses.gradient_penalty(
        lambda x: gan.critic.apply({"params": params}, x, labels), real, fake,
        eps)[0]
  np.testing.assert_allclose(metrics["critic/gradient_penalty"],
                             penalty(y_real), rtol=1e-5)
  assert abs(float(penalty(y_real)) - float(penalty(y_fake))) > 1e-4


def test_fake_labels_are_uniform_or_follow_the_data():
  config = _config(batch_size=4096)
  uniform = train_step.create_gan(config, IMAGE_SHAPE)
  counts = np.bincount(np.asarray(train_step.step_noise(uniform, 0).critic_labels).ravel(),
                       minlength=NUM_CLASSES) / (2 * 4096)
  np.testing.assert_allclose(counts, 1 / NUM_CLASSES, atol=0.02)
  config = _config(batch_size=4096, fake_labels="data")
  skewed = train_step.create_gan(config, IMAGE_SHAPE, (0.7, 0.2, 0.1))
  labels = np.asarray(train_step.step_noise(skewed, 0).generator_labels)
  np.testing.assert_allclose(np.bincount(labels, minlength=3) / 4096,
                             (0.7, 0.2, 0.1), atol=0.03)
  # A function of (seed, step), like the rest of the step's noise.
  np.testing.assert_array_equal(
      labels, np.asarray(train_step.step_noise(skewed, 0).generator_labels))
  assert not np.array_equal(
      labels, np.asarray(train_step.step_noise(skewed, 1).generator_labels))


def test_with_data_labels_the_critic_fakes_take_the_real_batch_labels(monkeypatch):
  config = _config(fake_labels="data")
  gan = train_step.create_gan(config, IMAGE_SHAPE, (0.5, 0.25, 0.25))
  original = train_step.critic_objective
  captured = []
  def spy(gan, params, stats, real, fake, eps, real_labels, fake_labels):
    # Runs once per critic update, compiled: op-by-op it takes half a minute.
    jax.debug.callback(
        lambda r, f: captured.append((np.asarray(r), np.asarray(f))),
        real_labels, fake_labels, ordered=True)
    return original(gan, params, stats, real, fake, eps, real_labels, fake_labels)
  monkeypatch.setattr(train_step, "critic_objective", spy)
  batch = _batch(config)
  jax.block_until_ready(jax.jit(functools.partial(train_step.train_step, gan))(
      train_step.create_train_state(gan), batch))
  jax.effects_barrier()
  assert len(captured) == config.n_critic
  for i, (real_labels, fake_labels) in enumerate(captured):
    np.testing.assert_array_equal(real_labels, batch["label"][i])
    np.testing.assert_array_equal(fake_labels, batch["label"][i])


@pytest.mark.parametrize("generator,critic", [("cbn", "projection"),
                                              ("concat", "ac"),
                                              ("cbn", "concat")])
def test_eight_devices_equal_one_device_for_a_conditional_gan(generator, critic):
  assert jax.device_count() == 8
  config = _config(generator, critic, batch_size=16)
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  batches = [_batch(config, seed) for seed in range(2)]
  finals = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.make_mesh(devices)
    step = train_step.make_train_step(gan, mesh)
    state = train_step.init_state_on_mesh(gan, mesh)
    for batch in batches:
      state, metrics = step(state, batch)
    finals.append(jax.device_get(state))
  chex.assert_trees_all_close(finals[0], finals[1], rtol=1e-4, atol=1e-6)
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_a_conditional_step_uses_the_batch_labels():
  config = _config()
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  step = jax.jit(functools.partial(train_step.train_step, gan))
  batch = _batch(config)
  a, _ = step(train_step.create_train_state(gan), batch)
  relabelled = dict(batch, label=(batch["label"] + 1) % NUM_CLASSES)
  b, _ = step(train_step.create_train_state(gan), relabelled)
  moved = jax.tree.map(lambda p, q: float(jnp.abs(p - q).max()),
                       a.critic.params, b.critic.params)
  assert max(jax.tree.leaves(moved)) > 0


# ------------------------------------------------------------ validation --


def test_conditional_batch_norm_needs_a_generator_with_batch_norm():
  config = _config()
  config.model.generator_norm = "none"
  with pytest.raises(ConfigError, match="no batch norm in its generator"):
    validation.check_data_shape(config, IMAGE_SHAPE)
  config.model.generator_conditioning = "concat"
  validation.check_data_shape(config, IMAGE_SHAPE)


class _Data:
  def __init__(self, labels, class_names):
    self.labels, self.class_names = labels, class_names
    self.num_classes = len(class_names)


def test_a_conditional_config_needs_labelled_data_with_its_class_count():
  config = _config()
  config.data.source, config.data.path = "folder", "/data/faces"
  with pytest.raises(ConfigError, match="needs labelled data.*folder at /data/faces"):
    validation.check_labels(config, _Data(None, ()))
  with pytest.raises(ConfigError, match=r"has 2 classes \(cat, dog\): set "
                     "config.model.num_classes=2"):
    validation.check_labels(config, _Data(np.zeros(4, np.int32), ("cat", "dog")))
  validation.check_labels(config, _Data(np.zeros(4, np.int32), ("a", "b", "c")))
  config.model.num_classes = 0  # unconditional runs take any data
  validation.check_labels(config, _Data(None, ()))
