"""GAN metrics on feature vectors (e.g. Inception pool3): FID, KID, P/R.

Everything here is float64 numpy/scipy on the host; features come in as
[N, D] arrays of any float dtype (`inception.make_feature_fn` gives
float32 [N, 2048]).

- FID (Heusel et al. 2017): Frechet distance between Gaussians fitted to the
  two feature sets.
- KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel
  k(x, y) = (x.y / D + 1)^3, averaged over random subsets (as clean-fid and
  torch-fidelity do).
- Improved precision/recall (Kynkaanniemi et al. 2019): k-NN manifolds.
- `cached_statistics`, `cached_features`: (mu, sigma) and the features of a
  reference set, cached on disk.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
import zipfile
from typing import Any, Callable

import numpy as np
import scipy.linalg


def _as_features(features: np.ndarray, name: str = "features") -> np.ndarray:
  x = np.asarray(features, np.float64)
  if x.ndim != 2:
    raise ValueError(f"{name}: expected [N, D], got shape {x.shape}")
  return x


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance of features [N, D] (N >= 2).

  Returns:
    mu float64 [D]; sigma float64 [D, D], the unbiased (N - 1) covariance as
    in the reference FID code (np.cov).
  """
  x = _as_features(features)
  if len(x) < 2:
    raise ValueError(f"need at least 2 feature vectors, got {len(x)}")
  return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  """Symmetric square root of a symmetric PSD matrix, via eigh.

  The eigensolver is accurate to about D * eps * max|eigval|; smaller
  eigenvalues (of either sign) are rounding noise and are set to 0, so the
  null space of a rank-deficient covariance (N < D) stays exactly null.
  """
  eigvals, eigvecs = scipy.linalg.eigh(matrix)
  tol = eigvals.size * np.finfo(np.float64).eps * np.abs(eigvals).max(
      initial=0.0)
  eigvals = np.where(eigvals > tol, eigvals, 0.0)
  return (eigvecs * np.sqrt(eigvals)) @ eigvecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
  """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

  ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)). The last trace is
  the sum of the singular values of R1 R2, with Ri = Si^(1/2) from a symmetric
  eigendecomposition: (R1 R2)(R1 R2)^T = R1 S2 R1 is similar to S1 S2, so its
  eigenvalues are the squared singular values. Singular or rank-deficient
  covariances (N < D) need no regularisation and give no complex parts
  (unlike scipy.linalg.sqrtm(S1 @ S2)), and small singular values keep full
  absolute accuracy (taking eigenvalues of R1 S2 R1 instead would add
  sqrt(rounding noise) ~ 1e-8 per null direction).

  Args:
    mu1, mu2: float [D]. sigma1, sigma2: symmetric PSD float [D, D].

  Returns:
    The squared distance (in squared feature units), a Python float. It can be
    about -1e-12 * tr(S) instead of 0 for identical inputs, from rounding.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1 = np.asarray(sigma1, np.float64)
  sigma2 = np.asarray(sigma2, np.float64)
  d = mu1.shape[0]
  if (mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or
      sigma2.shape != (d, d)):
    raise ValueError(f"shape mismatch: mu {mu1.shape}, {mu2.shape}; sigma "
                     f"{sigma1.shape}, {sigma2.shape}")
  # Symmetrise: covariances from float sums are symmetric only up to rounding.
  sigma1 = (sigma1 + sigma1.T) / 2
  sigma2 = (sigma2 + sigma2.T) / 2
  root_product = _sqrt_psd(sigma1) @ _sqrt_psd(sigma2)
  tr_covmean = scipy.linalg.svdvals(root_product).sum()
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) -
               2.0 * tr_covmean)


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """FID between two feature sets [Na, D] and [Nb, D] (Na, Nb >= 2).

  Equals `frechet_distance(*statistics(a), *statistics(b))`. When neither set
  has more rows than D (the covariances are singular anyway), it is computed
  from the centred data instead, exactly and without D x D matrices:
  tr sqrt(S1 S2) = ||A_c B_c^T||_* / sqrt((Na - 1)(Nb - 1)), because the
  non-zero eigenvalues of S1 S2 are those of (A_c B_c^T)(A_c B_c^T)^T scaled.
  """
  a = _as_features(features_a, "features_a")
  b = _as_features(features_b, "features_b")
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"feature dims differ: {a.shape[1]} vs {b.shape[1]}")
  if max(len(a), len(b)) > a.shape[1] or min(len(a), len(b)) < 2:
    return frechet_distance(*statistics(a), *statistics(b))
  mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
  ac, bc = a - mu_a, b - mu_b
  na1, nb1 = len(a) - 1, len(b) - 1
  tr_covmean = scipy.linalg.svdvals(ac @ bc.T).sum() / np.sqrt(na1 * nb1)
  diff = mu_a - mu_b
  return float(diff @ diff + np.sum(ac * ac) / na1 + np.sum(bc * bc) / nb1 -
               2.0 * tr_covmean)


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid(features_a: np.ndarray, features_b: np.ndarray,
        num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
  """Kernel Inception Distance: unbiased MMD^2, cubic polynomial kernel.

  Each of `num_subsets` rounds draws m = min(subset_size, Na, Nb) rows of each
  set without replacement and computes
    mean_{i!=j} k(a_i, a_j) + mean_{i!=j} k(b_i, b_j) - 2 mean_{i,j} k(a_i, b_j)
  with k(x, y) = (x.y / D + 1)^3 (Binkowski et al. 2018; clean-fid,
  torch-fidelity).

  Args:
    features_a, features_b: float [Na, D], [Nb, D].
    num_subsets: rounds to average.
    subset_size: rows per set and round; clipped to the available counts.
    seed: seed of the subset draws (np.random.default_rng).

  Returns:
    (mean, std) of the per-subset MMD^2 values (std with ddof=0, as
    torch-fidelity reports it). KID is often quoted x1000.
  """
  a = _as_features(features_a, "features_a")
  b = _as_features(features_b, "features_b")
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"feature dims differ: {a.shape[1]} vs {b.shape[1]}")
  m = min(subset_size, len(a), len(b))
  if m < 2:
    raise ValueError(f"need at least 2 rows per set, got {len(a)}, {len(b)}")
  if num_subsets < 1:
    raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
  rng = np.random.default_rng(seed)
  mmds = np.empty(num_subsets, np.float64)
  for i in range(num_subsets):
    x = a[rng.choice(len(a), m, replace=False)]
    y = b[rng.choice(len(b), m, replace=False)]
    kxx, kyy = _poly_kernel(x, x), _poly_kernel(y, y)
    # Off-diagonal means: the U-statistic drops the i == j terms.
    within = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (
        m * (m - 1))
    mmds[i] = within - 2.0 * _poly_kernel(x, y).mean()
  return float(mmds.mean()), float(mmds.std())


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Pairwise squared Euclidean distances [len(x), len(y)], clipped at 0."""
  sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
  return np.maximum(sq, 0.0)


def _knn_radii_squared(x: np.ndarray, k: int, batch_size: int) -> np.ndarray:
  """Squared distance of each row of x to its k-th nearest other row."""
  if not 1 <= k < len(x):
    raise ValueError(f"k must be in [1, {len(x) - 1}] for {len(x)} points, "
                     f"got {k}")
  radii = np.empty(len(x), np.float64)
  for start in range(0, len(x), batch_size):
    block = _squared_distances(x[start:start + batch_size], x)
    rows = np.arange(len(block))
    block[rows, start + rows] = np.inf  # Exclude each point itself.
    radii[start:start + len(block)] = np.partition(block, k - 1, axis=1)[:,
                                                                       k - 1]
  return radii


def _coverage(queries: np.ndarray, centers: np.ndarray,
              radii_squared: np.ndarray, batch_size: int) -> float:
  """Fraction of queries inside at least one ball (center, radius), <=."""
  inside = 0
  for start in range(0, len(queries), batch_size):
    block = _squared_distances(queries[start:start + batch_size], centers)
    inside += int((block <= radii_squared[None, :]).any(axis=1).sum())
  return inside / len(queries)


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray,
                     k: int = 3, batch_size: int = 1000
                     ) -> tuple[float, float]:
  """Improved precision and recall (Kynkaanniemi et al. 2019).

  Each set's manifold is the union of balls around its points with radius the
  distance to the point's k-th nearest neighbour in the same set (itself
  excluded; duplicates count as neighbours at distance 0). Precision: fraction
  of fake points inside the real manifold; recall: fraction of real points
  inside the fake manifold (boundary included).

  Args:
    real_features, fake_features: float [Nr, D], [Nf, D], with k < Nr, Nf.
    k: neighbourhood size (the paper uses 3).
    batch_size: rows per distance block; memory is about
      8 * batch_size * max(Nr, Nf) bytes (80 MB for 1000 x 10k).

  Returns:
    (precision, recall), floats in [0, 1].
  """
  real = _as_features(real_features, "real_features")
  fake = _as_features(fake_features, "fake_features")
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f"feature dims differ: {real.shape[1]} vs "
                     f"{fake.shape[1]}")
  real_radii = _knn_radii_squared(real, k, batch_size)
  fake_radii = _knn_radii_squared(fake, k, batch_size)
  precision = _coverage(fake, real, real_radii, batch_size)
  recall = _coverage(real, fake, fake_radii, batch_size)
  return precision, recall


# ------------------------------------------------------ reference cache --


def _json_default(value: Any) -> Any:
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, (pathlib.PurePath,)):
    return str(value)
  raise TypeError(f"cache key value {value!r} ({type(value).__name__}) is not "
                  f"JSON-serialisable")


def _canonical_key(key: dict[str, Any]) -> str:
  if not isinstance(key, dict):
    raise TypeError(f"key must be a dict, got {type(key).__name__}")
  return json.dumps(key, sort_keys=True, separators=(",", ":"),
                    default=_json_default)


def _cache_path(cache_dir: str | os.PathLike, key: dict[str, Any],
                prefix: str) -> pathlib.Path:
  digest = hashlib.sha256(_canonical_key(key).encode()).hexdigest()
  return pathlib.Path(cache_dir) / f"{prefix}_{digest[:32]}.npz"


def statistics_cache_path(cache_dir: str | os.PathLike,
                          key: dict[str, Any]) -> pathlib.Path:
  """The .npz file `cached_statistics` uses for `key` (need not exist).

  Named by the sha256 of the canonical JSON of `key` (sorted keys), so dict
  order does not matter and any changed value gives another file.
  """
  return _cache_path(cache_dir, key, "fid_stats")


def features_cache_path(cache_dir: str | os.PathLike,
                        key: dict[str, Any]) -> pathlib.Path:
  """The .npz file `cached_features` uses for `key` (need not exist)."""
  return _cache_path(cache_dir, key, "features")


def features_cached(cache_dir: str | os.PathLike, key: dict[str, Any]) -> bool:
  """Whether `cached_features(cache_dir, key, ...)` would read its file."""
  return _read_cached(features_cache_path(cache_dir, key), _canonical_key(key),
                      ("features",)) is not None


def _read_cached(path: pathlib.Path, key_json: str,
                 names: tuple[str, ...]) -> tuple[np.ndarray, ...] | None:
  """The arrays `names` of a cache file written for `key_json`, else None."""
  try:
    with np.load(path, allow_pickle=False) as z:
      if str(z["key"]) == key_json:
        return tuple(z[name] for name in names)
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
    pass  # Missing or unreadable: the caller recomputes.
  return None


def _write_cached(path: pathlib.Path, key_json: str,
                  **arrays: np.ndarray) -> None:
  """Writes an .npz with `arrays` and the key, atomically (temp + rename)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name,
                             suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, key=np.array(key_json), **arrays)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is shared.
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def cached_statistics(
    cache_dir: str | os.PathLike, key: dict[str, Any],
    compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """(mu, sigma) of reference features, computed once per key and cached.

  Args:
    cache_dir: folder of the cache (created if needed).
    key: JSON-serialisable dict that identifies the statistics, e.g.
      {"dataset": "fashion_mnist", "split": "train", "preprocessing":
      "uint8 28x28x1", "num_images": 10000, "weights": weights_digest}.
    compute: called only on a cache miss; returns features [N, D].

  Returns:
    mu float64 [D], sigma float64 [D, D], as `statistics` gives them.

  The file is written to a temporary name in cache_dir and renamed with
  os.replace, so readers never see a partial file. It stores the key too: a
  file whose key differs, or that cannot be read, is recomputed and replaced.
  """
  key_json = _canonical_key(key)
  path = statistics_cache_path(cache_dir, key)
  cached = _read_cached(path, key_json, ("mu", "sigma"))
  if cached is not None:
    return cached
  features = np.asarray(compute())
  mu, sigma = statistics(features)
  _write_cached(path, key_json, mu=mu, sigma=sigma,
                num_features=np.int64(len(features)))
  return mu, sigma


def cached_features(cache_dir: str | os.PathLike, key: dict[str, Any],
                    compute: Callable[[], np.ndarray]) -> np.ndarray:
  """Feature vectors [N, D], computed once per key and cached.

  KID and precision/recall need the reference features themselves, not only
  (mu, sigma). Same file handling as `cached_statistics` (atomic write, key
  stored and checked, unreadable files recomputed); a separate file name
  prefix, so one key can name both the features and their statistics.

  Args:
    cache_dir: folder of the cache (created if needed).
    key: JSON-serialisable dict that identifies the features.
    compute: called only on a cache miss; returns features [N, D].

  Returns:
    The features as `compute` returned them (dtype kept; float32 [N, 2048]
    from Inception is 8 MB per 1000 rows).
  """
  key_json = _canonical_key(key)
  path = features_cache_path(cache_dir, key)
  cached = _read_cached(path, key_json, ("features",))
  if cached is not None:
    return cached[0]
  features = np.asarray(compute())
  if features.ndim != 2:
    raise ValueError(f"compute must return features [N, D], got shape "
                     f"{features.shape}")
  _write_cached(path, key_json, features=features)
  return features


def cached_arrays(cache_dir: str | os.PathLike, key: dict[str, Any],
                  prefix: str,
                  compute: Callable[[], dict[str, np.ndarray]]
                  ) -> dict[str, np.ndarray]:
  """Named arrays (e.g. a small network's parameters), computed once per key and cached.

  The file handling of `cached_statistics`; files are named PREFIX_<sha256>.npz.
  """
  key_json = _canonical_key(key)
  path = _cache_path(cache_dir, key, prefix)
  try:
    with np.load(path, allow_pickle=False) as z:
      if str(z["key"]) == key_json:
        return {name: z[name] for name in z.files if name != "key"}
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
    pass  # Missing or unreadable: recomputed.
  arrays = {name: np.asarray(value) for name, value in compute().items()}
  _write_cached(path, key_json, **arrays)
  return arrays
