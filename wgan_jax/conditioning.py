"""Class conditioning of generators and critics, in two tables.

A run is class-conditional when config.model.num_classes > 0. Then
config.model.generator_conditioning names how the generator takes the label
(`GENERATOR_METHODS`) and config.model.critic_conditioning how the critic
does (`CRITIC_METHODS`). The architectures of models.py call these functions
inside their compact `__call__`, so the layers they create belong to, and are
named in, the architecture's module. An unconditional network uses the
'none' entries, which create no layer and refuse labels; its parameters are
exactly those of the unconditional architecture.

Generator:
  'concat'      a learned label embedding [B, label_embedding_dim]
                concatenated with z (Mirza & Osindero 2014; the animal-faces
                seed).
  'cbn'         conditional batch norm: every batch norm of the generator gets
                a per-class scale and shift (de Vries et al. 2017; BigGAN and
                StudioGAN's cBN).
Critic (features phi(x) [B, F] are the input of the critic's last Dense):
  'projection'  D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama
                2018).
  'ac'          an auxiliary classifier (Odena et al. 2017): a class head
                Dense(K) on phi(x), which never sees the label; the score
                psi(phi(x)) is unconditional. The critic returns (scores [B],
                class_logits [B, K]).
  'concat'      label planes: a learned embedding of y reshaped to one
                [H, W, 1] plane, concatenated to the image as an extra channel
                (the animal-faces seed); for 2-D points, an embedding
                concatenated to the point.

Labels are int32 [B] in [0, num_classes). Every method keeps the critic a
per-sample function, so the gradient penalty stays per sample.
"""

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
CriticOutput = Array | tuple[Array, Array]

UNCONDITIONAL = "none"
# Width of the label embedding concatenated to a 2-D point ('concat' critic).
_POINT_EMBEDDING_DIM = 16


def _refuse_labels(labels: Array | None) -> None:
  if labels is not None:
    raise ValueError("This network is unconditional (config.model.num_classes "
                     "= 0): call it with labels=None.")


def _require_labels(labels: Array | None, batch: int) -> None:
  if labels is None:
    raise ValueError("This network is class-conditional (config.model."
                     "num_classes > 0): call it with labels, int32 [B].")
  if labels.shape != (batch,):
    raise ValueError(f"labels must have shape [{batch}], got {labels.shape}.")


class ConditionalBatchNorm(nn.Module):
  """Batch norm with a per-class scale and shift: x [B, ..., C], labels [B].

  (x - mean) / sqrt(var + eps) * gamma[y] + beta[y], with the batch
  statistics of plain batch norm; gamma starts at 1 and beta at 0, so at
  initialization it is batch norm.
  """
  num_classes: int
  momentum: float
  epsilon: float

  @nn.compact
  def __call__(self, x: Array, labels: Array, train: bool) -> Array:
    features = x.shape[-1]
    x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                     epsilon=self.epsilon, use_scale=False, use_bias=False,
                     name="norm")(x)
    gamma = nn.Embed(self.num_classes, features,
                     embedding_init=nn.initializers.ones, name="scale")(labels)
    beta = nn.Embed(self.num_classes, features,
                    embedding_init=nn.initializers.zeros, name="shift")(labels)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)
    return (x * gamma.reshape(shape).astype(x.dtype)
            + beta.reshape(shape).astype(x.dtype))


# ----------------------------------------------------------------- generator --


@dataclasses.dataclass(frozen=True)
class GeneratorConditioning:
  """How a generator takes the label.

  Attributes:
    prepare_noise: (z [B, z_dim], labels [B] or None, num_classes,
      embedding_dim) -> the generator's input [B, z_dim'].
    conditional_norm: the generator's batch norms take the label (cBN); the
      architecture must have batch norm.
  """
  prepare_noise: Callable[[Array, Array | None, int, int], Array]
  conditional_norm: bool = False


def _noise_unconditional(z: Array, labels: Array | None, num_classes: int,
                         embedding_dim: int) -> Array:
  del num_classes, embedding_dim
  _refuse_labels(labels)
  return z


def _noise_unchanged(z: Array, labels: Array | None, num_classes: int,
                     embedding_dim: int) -> Array:
  del num_classes, embedding_dim
  _require_labels(labels, z.shape[0])
  return z


def _noise_with_label_embedding(z: Array, labels: Array | None,
                                num_classes: int, embedding_dim: int) -> Array:
  _require_labels(labels, z.shape[0])
  embedding = nn.Embed(num_classes, embedding_dim, name="label_embedding")(labels)
  return jnp.concatenate([z, embedding.astype(z.dtype)], axis=-1)


GENERATOR_METHODS: dict[str, GeneratorConditioning] = {
    UNCONDITIONAL: GeneratorConditioning(_noise_unconditional),
    "concat": GeneratorConditioning(_noise_with_label_embedding),
    "cbn": GeneratorConditioning(_noise_unchanged, conditional_norm=True),
}


def generator_batch_norm(method: str, labels: Array | None, num_classes: int,
                         train: bool, momentum: float, epsilon: float,
                         name: str | None = None) -> Callable[[Array], Array]:
  """The generator's batch norm x -> y: plain, or per class for 'cbn'."""
  if GENERATOR_METHODS[method].conditional_norm:
    norm = ConditionalBatchNorm(num_classes, momentum, epsilon, name=name)
    return lambda x: norm(x, labels, train)
  return nn.BatchNorm(use_running_average=not train, momentum=momentum,
                      epsilon=epsilon, name=name)


# -------------------------------------------------------------------- critic --


@dataclasses.dataclass(frozen=True)
class CriticConditioning:
  """How a critic takes the label.

  Attributes:
    prepare_input: (x [B, ...], labels [B] or None, num_classes) -> the
      critic's input (with label planes for 'concat').
    head: (phi [B, F], score_layer, labels, num_classes) -> scores [B], or
      (scores [B], class_logits [B, K]) when `classifier`. score_layer is the
      architecture's Dense(1), created by it so that its name is the same
      as in the unconditional network.
    classifier: the critic has an auxiliary class head.
  """
  prepare_input: Callable[[Array, Array | None, int], Array]
  head: Callable[[Array, nn.Module, Array | None, int], CriticOutput]
  classifier: bool = False


def _score(phi: Array, score_layer: nn.Module) -> Array:
  return score_layer(phi)[:, 0].astype(jnp.float32)


def _input_unconditional(x: Array, labels: Array | None,
                         num_classes: int) -> Array:
  del num_classes
  _refuse_labels(labels)
  return x


def _input_unchanged(x: Array, labels: Array | None, num_classes: int) -> Array:
  del num_classes
  _require_labels(labels, x.shape[0])
  return x


def _input_label_agnostic(x: Array, labels: Array | None,
                          num_classes: int) -> Array:
  del labels, num_classes  # The AC critic never sees the label.
  return x


def _input_with_label_planes(x: Array, labels: Array | None,
                             num_classes: int) -> Array:
  _require_labels(labels, x.shape[0])
  init = nn.initializers.normal(1.0)  # As loud as the image's pixels.
  if x.ndim == 4:
    b, h, w, _ = x.shape
    planes = nn.Embed(num_classes, h * w, embedding_init=init,
                      name="label_planes")(labels)
    return jnp.concatenate([x, planes.reshape(b, h, w, 1).astype(x.dtype)], -1)
  embedding = nn.Embed(num_classes, _POINT_EMBEDDING_DIM, embedding_init=init,
                       name="label_planes")(labels)
  flat = x.reshape(x.shape[0], -1)
  return jnp.concatenate([flat, embedding.astype(x.dtype)], -1)


def _head_plain(phi: Array, score_layer: nn.Module, labels: Array | None,
                num_classes: int) -> Array:
  del labels, num_classes
  return _score(phi, score_layer)


def _head_projection(phi: Array, score_layer: nn.Module, labels: Array | None,
                     num_classes: int) -> Array:
  embedding = nn.Embed(num_classes, phi.shape[-1], name="projection")(labels)
  inner = jnp.sum(embedding * phi.astype(jnp.float32), axis=-1)
  return _score(phi, score_layer) + inner


def _head_classifier(phi: Array, score_layer: nn.Module, labels: Array | None,
                     num_classes: int) -> tuple[Array, Array]:
  del labels
  logits = nn.Dense(num_classes, name="class_head")(phi)
  return _score(phi, score_layer), logits.astype(jnp.float32)


CRITIC_METHODS: dict[str, CriticConditioning] = {
    UNCONDITIONAL: CriticConditioning(_input_unconditional, _head_plain),
    "projection": CriticConditioning(_input_unchanged, _head_projection),
    "ac": CriticConditioning(_input_label_agnostic, _head_classifier,
                             classifier=True),
    "concat": CriticConditioning(_input_with_label_planes, _head_plain),
}

# The user's choices (config.model.*_conditioning); 'none' is num_classes = 0.
GENERATOR_CHOICES = tuple(m for m in GENERATOR_METHODS if m != UNCONDITIONAL)
CRITIC_CHOICES = tuple(m for m in CRITIC_METHODS if m != UNCONDITIONAL)


def methods(model: Any) -> tuple[str, str]:
  """(generator method, critic method) of a config.model: 'none' if num_classes = 0."""
  if not model.num_classes:
    return UNCONDITIONAL, UNCONDITIONAL
  return model.generator_conditioning, model.critic_conditioning


def split_critic_output(out: CriticOutput) -> tuple[Array, Array | None]:
  """(scores [B], class_logits [B, K] or None) of a critic's output."""
  if isinstance(out, tuple):
    return out
  return out, None


def critic_scores(out: CriticOutput) -> Array:
  """The scores [B] of a critic's output (without an AC head's logits)."""
  return split_critic_output(out)[0]
