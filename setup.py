"""wgan-jax: Wasserstein GANs in JAX/Flax."""
import setuptools

setuptools.setup(
    name="wgan-jax",
    version="0.1.0",
    description="Wasserstein GANs (weight clipping, gradient penalty) and DCGAN in JAX/Flax",
    packages=setuptools.find_packages(include=["wgan_jax", "wgan_jax.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.7",
        "flax>=0.11",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "tensorflow-datasets>=4.9.8",
        "numpy>=1.26",
        "absl-py",
        "chex>=0.1.90",
        "ml-collections>=1.0",
        "pillow>=10",
        "matplotlib>=3.8",
        "scipy>=1.11",
        "tensorboardX>=2.6",
        # tensorflow_datasets.data_source imports it but does not declare it.
        "importlib_resources",
    ],
    extras_require={
        "test": ["pytest>=8"],
    },
)
