"""Specification of the GAN metrics (wgan_jax.metrics).

References are computed independently in this file: FID with
scipy.linalg.sqrtm or an SVD identity, KID and precision/recall with plain
loops over pairs of points.
"""

import numpy as np
import pytest
import scipy.linalg

from wgan_jax import metrics


# --------------------------------------------------------------------- FID --


def fid_sqrtm_reference(a: np.ndarray, b: np.ndarray) -> float:
  """The original FID formula with scipy.linalg.sqrtm(S1 S2)."""
  mu1, mu2 = a.mean(0), b.mean(0)
  s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) -
               2 * np.trace(covmean).real)


def fid_svd_reference(a: np.ndarray, b: np.ndarray) -> float:
  """FID through tr sqrt(S1 S2) = nuclear norm of A_c B_c^T / sqrt(c).

  With centred data A_c [n1, D], B_c [n2, D] and S1 = A_c^T A_c / (n1 - 1),
  S2 = B_c^T B_c / (n2 - 1), the non-zero eigenvalues of S1 S2 are those of
  (A_c B_c^T)(A_c B_c^T)^T / ((n1 - 1)(n2 - 1)), i.e. the squared singular
  values of A_c B_c^T / sqrt((n1 - 1)(n2 - 1)). Exact when n < D, where
  sqrtm struggles with the singular product.
  """
  ac, bc = a - a.mean(0), b - b.mean(0)
  scale = np.sqrt((len(a) - 1) * (len(b) - 1))
  tr_covmean = np.linalg.svd(ac @ bc.T / scale, compute_uv=False).sum()
  return float(np.sum((a.mean(0) - b.mean(0)) ** 2) +
               np.sum(ac * ac) / (len(a) - 1) + np.sum(bc * bc) / (len(b) - 1)
               - 2 * tr_covmean)


def correlated_features(rng, n, d, shift=0.0, spectrum=None):
  """Gaussian features, covariance M^T M, M with the given singular values."""
  spectrum = np.linspace(2.0, 0.5, d) if spectrum is None else spectrum
  q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
  q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
  mixing = q1 @ np.diag(spectrum) @ q2
  return rng.normal(size=(n, d)) @ mixing + shift


def test_statistics_are_mean_and_unbiased_covariance():
  x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
  mu, sigma = metrics.statistics(x)
  assert mu.dtype == np.float64 and sigma.dtype == np.float64
  centred = x.astype(np.float64) - x.astype(np.float64).mean(0)
  np.testing.assert_allclose(mu, x.astype(np.float64).sum(0) / 50, rtol=1e-12)
  np.testing.assert_allclose(sigma, centred.T @ centred / 49, rtol=1e-12)
  with pytest.raises(ValueError, match="at least 2"):
    metrics.statistics(x[:1])


def test_fid_matches_sqrtm_reference_on_random_features():
  rng = np.random.default_rng(1)
  a = correlated_features(rng, 400, 32)
  b = correlated_features(rng, 300, 32, shift=0.3)
  want = fid_sqrtm_reference(a, b)
  assert want > 1.0
  assert metrics.fid(a, b) == pytest.approx(want, rel=1e-9)
  assert metrics.fid(a, b) == pytest.approx(fid_svd_reference(a, b), rel=1e-12)


def test_fid_matches_references_on_near_singular_covariances():
  # Spectra down to 1e-6: covariance eigenvalues down to 1e-12.
  rng = np.random.default_rng(2)
  spectrum = np.logspace(0, -6, 24)
  a = correlated_features(rng, 500, 24, spectrum=spectrum)
  b = correlated_features(rng, 500, 24, shift=0.05, spectrum=spectrum)
  got = metrics.fid(a, b)
  assert got == pytest.approx(fid_svd_reference(a, b), rel=1e-12)
  # sqrtm of the ill-conditioned product is itself only good to ~1e-8.
  assert got == pytest.approx(fid_sqrtm_reference(a, b), rel=1e-7)


@pytest.mark.parametrize("n_a,n_b,d", [(20, 30, 64), (10, 10, 200),
                                       (50, 70, 64)])
def test_fid_matches_svd_identity_when_fewer_samples_than_dims(n_a, n_b, d):
  rng = np.random.default_rng(3)
  a = rng.normal(size=(n_a, d))
  b = rng.normal(size=(n_b, d)) * 1.5 + 0.2
  want = fid_svd_reference(a, b)
  # Both routes: from the features, and from rank-deficient (mu, sigma).
  from_stats = metrics.frechet_distance(*metrics.statistics(a),
                                        *metrics.statistics(b))
  assert np.isfinite(from_stats)
  assert from_stats == pytest.approx(want, rel=1e-12)
  assert metrics.fid(a, b) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("rows", [200, 10])  # More and fewer rows than D.
def test_fid_of_a_shifted_copy_is_the_squared_shift(rows):
  # Equal covariances: the trace terms cancel exactly, FID = ||shift||^2.
  rng = np.random.default_rng(4)
  a = correlated_features(rng, rows, 16) * 10
  shift = rng.normal(size=16)
  scale = np.trace(np.cov(a, rowvar=False))
  assert scale > 100 * (shift @ shift)  # The trace terms dominate.
  assert abs(metrics.fid(a, a + shift) - shift @ shift) < 1e-10 * scale
  assert abs(metrics.fid(a + shift, a) - shift @ shift) < 1e-10 * scale
  from_stats = metrics.frechet_distance(*metrics.statistics(a),
                                        *metrics.statistics(a + shift))
  assert abs(from_stats - shift @ shift) < 1e-10 * scale


def test_fid_is_symmetric():
  rng = np.random.default_rng(4)
  a = correlated_features(rng, 200, 16) * 10
  b = correlated_features(rng, 150, 16, shift=1.0) * 10
  assert metrics.fid(a, b) == pytest.approx(metrics.fid(b, a), rel=1e-10)
  assert metrics.fid(a, b) > 1.0


def test_frechet_distance_of_diagonal_gaussians_has_closed_form():
  rng = np.random.default_rng(5)
  mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
  s1 = rng.uniform(0.1, 3.0, 10)
  s2 = rng.uniform(0.1, 3.0, 10)
  s2[:3] = 0.0  # Singular: the closed form still holds.
  want = (np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2)))
  got = metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
  assert got == pytest.approx(want, rel=1e-12)


def test_frechet_distance_of_commuting_covariances_has_closed_form():
  # S1 = Q diag(s1) Q^T, S2 = Q diag(s2) Q^T share eigenvectors, so
  # tr sqrt(S1 S2) = sum sqrt(s1 s2) and the distance is
  # ||mu1 - mu2||^2 + sum (sqrt(s1) - sqrt(s2))^2. A rotated basis catches
  # elementwise square roots that a diagonal case would not.
  rng = np.random.default_rng(19)
  d = 12
  q, _ = np.linalg.qr(rng.normal(size=(d, d)))
  s1, s2 = rng.uniform(0.1, 4.0, d), rng.uniform(0.1, 4.0, d)
  s1[:2] = 0.0  # Rank-deficient too.
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
  got = metrics.frechet_distance(mu1, (q * s1) @ q.T, mu2, (q * s2) @ q.T)
  assert got == pytest.approx(want, rel=1e-10)
  # The same from samples: whitened x, y (sample mean 0, covariance exactly
  # I) scaled by sqrt(s) along the common axes Q and shifted by mu.
  n = 40
  x = rng.normal(size=(n, d))
  x = (x - x.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(
      x, rowvar=False))).T  # Sample covariance exactly I.
  y = rng.normal(size=(n + 5, d))
  y = (y - y.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(
      y, rowvar=False))).T
  a = (x * np.sqrt(s1)) @ q.T + mu1
  b = (y * np.sqrt(s2)) @ q.T + mu2
  assert metrics.fid(a, b) == pytest.approx(want, rel=1e-9)


def test_fid_is_invariant_to_rotation_and_translation_and_scales_squared():
  rng = np.random.default_rng(6)
  a = correlated_features(rng, 100, 8)
  b = correlated_features(rng, 120, 8, shift=0.4)
  q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
  shift = rng.normal(size=8)
  base = metrics.fid(a, b)
  assert metrics.fid(a @ q + shift, b @ q + shift) == pytest.approx(base,
                                                                     rel=1e-9)
  assert metrics.fid(3 * a, 3 * b) == pytest.approx(9 * base, rel=1e-9)


def test_frechet_distance_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match="shape"):
    metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# --------------------------------------------------------------------- KID --


def poly_kernel(x, y):
  return (np.dot(x, y) / len(x) + 1.0) ** 3


def unbiased_mmd2_reference(a, b):
  """Plain O(n^2) unbiased MMD^2 with the cubic polynomial kernel."""
  na, nb = len(a), len(b)
  kaa = sum(poly_kernel(a[i], a[j]) for i in range(na) for j in range(na)
            if i != j) / (na * (na - 1))
  kbb = sum(poly_kernel(b[i], b[j]) for i in range(nb) for j in range(nb)
            if i != j) / (nb * (nb - 1))
  kab = sum(poly_kernel(a[i], b[j]) for i in range(na)
            for j in range(nb)) / (na * nb)
  return kaa + kbb - 2 * kab


def test_kid_equals_plain_unbiased_mmd_when_subsets_take_all_rows():
  # subset_size is clipped to 15: every subset is a permutation of all rows,
  # so each subset's MMD^2 is the full-sample one and the std is 0.
  rng = np.random.default_rng(7)
  a = rng.normal(size=(15, 6))
  b = rng.normal(size=(15, 6)) + 0.3
  mean, std = metrics.kid(a, b, num_subsets=5, subset_size=1000)
  assert mean == pytest.approx(unbiased_mmd2_reference(a, b), rel=1e-10)
  assert std < 1e-12 * abs(mean)


def test_kid_subset_mean_is_unbiased_for_the_full_sample_mmd():
  # Each subset U-statistic has expectation equal to the full-sample one.
  rng = np.random.default_rng(8)
  a = rng.normal(size=(40, 5))
  b = rng.normal(size=(30, 5)) * 1.2 + 0.2
  want = unbiased_mmd2_reference(a, b)
  num_subsets = 4000
  mean, std = metrics.kid(a, b, num_subsets=num_subsets, subset_size=10,
                          seed=1)
  assert std > 0  # Subsets really differ.
  assert abs(mean - want) < 4 * std / np.sqrt(num_subsets)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_shifted():
  rng = np.random.default_rng(9)
  a = rng.normal(size=(600, 16))
  b = rng.normal(size=(600, 16))
  same_mean, same_std = metrics.kid(a, b, num_subsets=20, subset_size=200)
  shift_mean, shift_std = metrics.kid(a, b + 0.5, num_subsets=20,
                                      subset_size=200)
  assert abs(same_mean) < 3 * same_std
  assert shift_mean > 10 * shift_std
  assert shift_mean > 20 * abs(same_mean)


def test_kid_depends_on_seed_only_through_the_subsets():
  rng = np.random.default_rng(10)
  a, b = rng.normal(size=(50, 4)), rng.normal(size=(40, 4)) + 0.1
  assert metrics.kid(a, b, 10, 20, seed=3) == metrics.kid(a, b, 10, 20, seed=3)
  assert metrics.kid(a, b, 10, 20, seed=3) != metrics.kid(a, b, 10, 20, seed=4)


def test_kid_rejects_too_few_rows_and_mismatched_dims():
  with pytest.raises(ValueError, match="at least 2"):
    metrics.kid(np.zeros((1, 3)), np.zeros((5, 3)))
  with pytest.raises(ValueError, match="dims"):
    metrics.kid(np.zeros((5, 3)), np.zeros((5, 4)))


# -------------------------------------------------------- precision/recall --


def precision_recall_reference(real, fake, k):
  """Kynkaanniemi et al. 2019 with explicit loops and np.linalg.norm."""
  def radii(points):
    out = []
    for i, p in enumerate(points):
      dists = sorted(np.linalg.norm(p - q) for j, q in enumerate(points)
                     if j != i)
      out.append(dists[k - 1])
    return out

  def coverage(queries, centers, center_radii):
    inside = [any(np.linalg.norm(q - c) <= r
                  for c, r in zip(centers, center_radii)) for q in queries]
    return sum(inside) / len(queries)

  return (coverage(fake, real, radii(real)),
          coverage(real, fake, radii(fake)))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_matches_brute_force(k):
  rng = np.random.default_rng(11)
  real = rng.normal(size=(41, 4))
  fake = rng.normal(size=(33, 4)) * 1.3 + 1.2  # Partly overlapping.
  want = precision_recall_reference(real, fake, k)
  assert 0 < want[0] < 1 and 0 < want[1] < 1  # A non-trivial case.
  # batch_size 7 exercises blocks with a remainder.
  assert metrics.precision_recall(real, fake, k=k, batch_size=7) == want
  assert metrics.precision_recall(real, fake, k=k) == want


def test_precision_is_one_when_fakes_are_real_points():
  rng = np.random.default_rng(12)
  real = rng.normal(size=(60, 8))
  fake = real[rng.choice(60, 25, replace=False)]
  precision, recall = metrics.precision_recall(real, fake, k=3, batch_size=16)
  assert precision == 1.0
  assert recall < 1.0  # 25 fakes cannot cover all 60 real points here.


def test_precision_and_recall_are_zero_for_far_apart_clusters():
  rng = np.random.default_rng(13)
  real = rng.normal(size=(50, 6))
  fake = rng.normal(size=(40, 6)) + 100.0
  assert metrics.precision_recall(real, fake, k=3) == (0.0, 0.0)


def test_precision_recall_counts_duplicates_as_neighbours_at_distance_zero():
  # Every real point appears k times: its k-th other neighbour is a copy, so
  # the real manifold shrinks to the points themselves.
  rng = np.random.default_rng(14)
  base = rng.normal(size=(10, 3))
  real = np.repeat(base, 3, axis=0)
  fake = np.concatenate([base[:4], base[:4] + 1e-3])
  precision, _ = metrics.precision_recall(real, fake, k=2)
  assert precision == 0.5


def test_precision_recall_balls_include_their_boundary():
  # Real points 0, 1, 2, 3 on a line, k=1: every radius is exactly 1, and the
  # fake point 4 lies exactly on the ball around 3 (Kynkaanniemi et al. use
  # <=); 10 is outside. Fake radii are 6, so every real point is covered.
  real = np.array([[0.0], [1.0], [2.0], [3.0]])
  fake = np.array([[4.0], [10.0]])
  assert metrics.precision_recall(real, fake, k=1) == (0.5, 1.0)
  assert precision_recall_reference(real, fake, k=1) == (0.5, 1.0)


def test_precision_recall_rejects_k_not_below_set_size():
  with pytest.raises(ValueError, match="k must be"):
    metrics.precision_recall(np.zeros((3, 2)), np.ones((10, 2)), k=3)


# ------------------------------------------------------------------- cache --


class CountingCompute:
  def __init__(self, features):
    self.features, self.calls = features, 0

  def __call__(self):
    self.calls += 1
    return self.features


KEY = {"dataset": "fashion_mnist", "split": "train", "preprocessing":
       "uint8 28x28x1 -> tf1 bilinear 299", "num_images": 500,
       "weights": "5f8e04e1"}


def test_cached_statistics_computes_once_and_reuses(tmp_path):
  features = np.random.default_rng(15).normal(size=(500, 6)).astype(np.float32)
  compute = CountingCompute(features)
  mu1, sigma1 = metrics.cached_statistics(tmp_path, KEY, compute)
  mu2, sigma2 = metrics.cached_statistics(tmp_path, dict(reversed(
      list(KEY.items()))), compute)  # Same key, other dict order.
  assert compute.calls == 1
  x = features.astype(np.float64)
  want_mu = x.sum(0) / len(x)
  want_sigma = (x - want_mu).T @ (x - want_mu) / (len(x) - 1)
  for mu, sigma in ((mu1, sigma1), (mu2, sigma2)):
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, want_mu, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sigma, want_sigma, rtol=1e-10, atol=1e-15)
  np.testing.assert_array_equal(mu1, mu2)  # The second came from the file.
  np.testing.assert_array_equal(sigma1, sigma2)
  files = sorted(p.name for p in tmp_path.iterdir())
  assert files == [metrics.statistics_cache_path(tmp_path, KEY).name]
  assert files[0].endswith(".npz")


@pytest.mark.parametrize("field,value", [
    ("dataset", "anime_faces"), ("split", "test"),
    ("preprocessing", "uint8 32x32x3"), ("num_images", 501),
    ("weights", "0000")])
def test_cached_statistics_key_change_recomputes(tmp_path, field, value):
  rng = np.random.default_rng(16)
  first = CountingCompute(rng.normal(size=(20, 3)))
  second = CountingCompute(rng.normal(size=(20, 3)) + 5)
  mu1, _ = metrics.cached_statistics(tmp_path, KEY, first)
  mu2, _ = metrics.cached_statistics(tmp_path, {**KEY, field: value}, second)
  assert (first.calls, second.calls) == (1, 1)
  assert np.all(mu2 > mu1 + 3)  # The second features, not the cached first.
  assert len(list(tmp_path.iterdir())) == 2
  # Both entries stay valid.
  metrics.cached_statistics(tmp_path, KEY, first)
  assert first.calls == 1


def test_cached_statistics_replaces_a_corrupt_file(tmp_path):
  compute = CountingCompute(np.random.default_rng(17).normal(size=(10, 2)))
  path = metrics.statistics_cache_path(tmp_path, KEY)
  path.write_bytes(b"not an npz")
  mu, _ = metrics.cached_statistics(tmp_path, KEY, compute)
  assert compute.calls == 1
  np.testing.assert_array_equal(mu, compute.features.mean(0))
  metrics.cached_statistics(tmp_path, KEY, compute)
  assert compute.calls == 1


def test_cached_statistics_leaves_no_file_when_writing_fails(tmp_path,
                                                             monkeypatch):
  def failing_savez(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(np, "savez", failing_savez)
  with pytest.raises(OSError, match="disk full"):
    metrics.cached_statistics(tmp_path / "c", KEY,
                              CountingCompute(np.ones((4, 2))))
  assert list((tmp_path / "c").iterdir()) == []  # No partial or temp file.


def test_cached_statistics_key_must_be_json(tmp_path):
  compute = CountingCompute(np.ones((4, 2)))
  with pytest.raises(TypeError, match="JSON"):
    metrics.cached_statistics(tmp_path, {"x": object()}, compute)
  assert compute.calls == 0
  # numpy scalars are fine and equal to the Python values.
  metrics.cached_statistics(tmp_path, {"n": np.int64(3)}, compute)
  metrics.cached_statistics(tmp_path, {"n": 3}, compute)
  assert compute.calls == 1


def test_cached_features_computes_once_and_keys_like_the_statistics(
    tmp_path):
  rng = np.random.default_rng(18)
  first = CountingCompute(rng.normal(size=(12, 5)).astype(np.float32))
  got = metrics.cached_features(tmp_path, KEY, first)
  again = metrics.cached_features(tmp_path, dict(reversed(list(KEY.items()))),
                                  first)
  assert first.calls == 1
  for features in (got, again):
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, first.features)
  # Statistics under the same key live in another file; a new key recomputes.
  metrics.cached_statistics(tmp_path, KEY, first)
  assert first.calls == 2
  other = CountingCompute(rng.normal(size=(12, 5)))
  np.testing.assert_array_equal(
      metrics.cached_features(tmp_path, {**KEY, "split": "test"}, other),
      other.features)
  assert other.calls == 1
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
      metrics.features_cache_path(tmp_path, KEY).name,
      metrics.features_cache_path(tmp_path, {**KEY, "split": "test"}).name,
      metrics.statistics_cache_path(tmp_path, KEY).name])


def test_cached_features_replaces_a_corrupt_file_and_rejects_bad_shapes(
    tmp_path):
  compute = CountingCompute(np.ones((3, 2)))
  metrics.features_cache_path(tmp_path, KEY).write_bytes(b"not an npz")
  got = metrics.cached_features(tmp_path, KEY, compute)
  np.testing.assert_array_equal(got, np.ones((3, 2)))
  assert compute.calls == 1
  with pytest.raises(ValueError, match=r"\[N, D\]"):
    metrics.cached_features(tmp_path, {"other": 1},
                            CountingCompute(np.ones(3)))
