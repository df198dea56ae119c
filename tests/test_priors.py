"""The priors: the flower mixture has the paper's means and covariances; tags pick components."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musae_jax import priors

NUM_SAMPLES = 40_000


def test_flower_means_lie_on_the_unit_circle_of_dims_0_and_1():
  means = np.asarray(priors.flower_means(8, 5))
  assert means.shape == (8, 5)
  angles = 2 * np.pi * np.arange(8) / 8
  np.testing.assert_allclose(means[:, 0], np.cos(angles), atol=1e-6)
  np.testing.assert_allclose(means[:, 1], np.sin(angles), atol=1e-6)
  np.testing.assert_array_equal(means[:, 2:], 0.0)


@pytest.mark.parametrize("component", [0, 3, 5])
def test_flower_component_has_mean_and_rotated_covariance_of_the_paper(component):
  num_components, latent = 7, 6
  samples = priors.sample_prior(jax.random.key(component), "flower", latent, NUM_SAMPLES,
                                jnp.full((NUM_SAMPLES,), component), num_components)
  samples = np.asarray(samples, np.float64)
  angle = 2 * np.pi * component / num_components
  mean = np.zeros(latent)
  mean[:2] = np.cos(angle), np.sin(angle)
  # Standard error of a mean is sqrt(var / n): 0.0016 radially, 0.00016 elsewhere.
  np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.008)

  centred = samples - mean
  radial_dir = np.zeros(latent)
  radial_dir[:2] = np.cos(angle), np.sin(angle)
  tangent_dir = np.zeros(latent)
  tangent_dir[:2] = -np.sin(angle), np.cos(angle)
  radial, tangential = centred @ radial_dir, centred @ tangent_dir
  # A variance estimate has relative standard error sqrt(2 / n) = 0.7%; allow 4%.
  np.testing.assert_allclose(radial.var(), 0.1, rtol=0.04)
  np.testing.assert_allclose(tangential.var(), 0.001, rtol=0.04)
  np.testing.assert_allclose(centred[:, 2:].var(axis=0), 0.001, rtol=0.04)

  # The whole covariance is M S M^-1 of eqs. 15-18, built here densely to compare.
  rotation = np.eye(latent)
  rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
  scales = np.diag([0.1] + [0.001] * (latent - 1))
  expected = rotation @ scales @ np.linalg.inv(rotation)
  np.testing.assert_allclose(np.cov(samples, rowvar=False), expected, atol=0.004)


def test_flower_variances_are_configurable():
  samples = np.asarray(priors.sample_prior(
      jax.random.key(0), "flower", 4, NUM_SAMPLES, jnp.zeros((NUM_SAMPLES,), jnp.int32), 3,
      radial_variance=0.5, other_variance=0.02))
  # Component 0 sits at angle 0, so the radius is dim 0 and the tangent dim 1.
  np.testing.assert_allclose(samples.var(axis=0), [0.5, 0.02, 0.02, 0.02], rtol=0.04)


def test_flower_samples_follow_each_rows_component():
  components = jnp.array([0, 1, 2, 3] * 2000)
  samples = np.asarray(priors.sample_prior(jax.random.key(1), "flower", 3, 8000, components, 4))
  means = np.asarray(priors.flower_means(4, 3))
  for k in range(4):
    np.testing.assert_allclose(samples[k::4].mean(axis=0), means[k], atol=0.03)


def test_gaussian_prior_is_standard_normal():
  samples = np.asarray(priors.sample_prior(jax.random.key(2), "gaussian", 3, NUM_SAMPLES))
  np.testing.assert_allclose(samples.mean(axis=0), 0.0, atol=0.03)
  np.testing.assert_allclose(np.cov(samples, rowvar=False), np.eye(3), atol=0.04)


def test_component_is_a_uniform_tag_of_the_window_or_the_unlabeled_one():
  genres = jnp.array([[1, 0, 1, 1], [0, 1, 0, 0], [0, 0, 0, 0]], jnp.float32)
  draws = np.stack([np.asarray(priors.draw_components(jax.random.key(i), genres))
                    for i in range(3000)])
  counts = np.bincount(draws[:, 0], minlength=5) / len(draws)
  np.testing.assert_allclose(counts, [1 / 3, 0, 1 / 3, 1 / 3, 0], atol=0.04)
  assert (draws[:, 1] == 1).all()
  assert (draws[:, 2] == 4).all()  # No tag: the extra component after the G genres.
  no_vocabulary = priors.draw_components(jax.random.key(0), jnp.zeros((3, 0)))
  np.testing.assert_array_equal(no_vocabulary, [0, 0, 0])


def test_bad_prior_requests_are_clear_errors():
  with pytest.raises(ValueError, match="Unknown prior 'uniform'"):
    priors.sample_prior(jax.random.key(0), "uniform", 4, 2)
  with pytest.raises(ValueError, match="needs each sample's component"):
    priors.sample_prior(jax.random.key(0), "flower", 4, 2)
