"""wgan_jax: Wasserstein GANs (weight clipping, gradient penalty) and DCGAN in JAX/Flax."""

__version__ = "0.1.0"
