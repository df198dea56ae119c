"""The latent priors the critic compares the encoder's codes with, sampled on device.

  "gaussian"  N(0, I).
  "flower"    a mixture of K Gaussians (paper eqs. 14-18): one component per genre of the
              dataset's vocabulary plus one for unlabeled windows. Component k has its mean on
              the unit circle of dims 0-1 at angle 2*pi*k/K, variance a_1 (0.1) along the
              radius and a_2 (0.001) in every other direction, including the tangent.

The flower covariance M_k S M_k^-1 only rotates dims 0-1, so a sample is a 2-D Gaussian with
variances (a_1, a_2) rotated to the component's angle plus isotropic noise of variance a_2 in
the other dims: no N_z x N_z matrix is ever built.

Rotating dims 0-1 by 2*pi*(j - k)/K maps component k's distribution exactly onto component j's:
that rotation is how a code moves from one genre to another (`move_to_component`). The latent
geometry the tools use (nearest component, genre transfer, interpolation) lives here, in numpy.
"""

import jax
import jax.numpy as jnp
import numpy as np

PRIORS = ("gaussian", "flower")


def component_count(prior: str, num_genres: int) -> int:
  """Components of the prior: one per genre plus one for unlabeled windows for "flower" (the
  critic is conditioned on a one-hot of them), 0 for "gaussian"."""
  return num_genres + 1 if prior == "flower" else 0


def flower_angles(num_components: int) -> jax.Array:
  return 2.0 * jnp.pi * jnp.arange(num_components) / num_components


def flower_means(num_components: int, latent_size: int) -> jax.Array:
  """[K, N_z]: component k's mean (cos 2*pi*k/K, sin 2*pi*k/K, 0, ..., 0)."""
  angles = flower_angles(num_components)
  circle = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)
  return jnp.pad(circle, ((0, 0), (0, latent_size - 2)))


def sample_prior(key: jax.Array, prior: str, latent_size: int, batch: int,
                 component: jax.Array | None = None, num_components: int = 0,
                 radial_variance: float = 0.1, other_variance: float = 0.001) -> jax.Array:
  """[batch, latent_size] float32 samples of the prior.

  component: int [batch], the flower component of each sample (ignored by "gaussian").
  """
  if prior == "gaussian":
    return jax.random.normal(key, (batch, latent_size), jnp.float32)
  if prior != "flower":
    raise ValueError(f"Unknown prior {prior!r}; expected one of {PRIORS}.")
  if component is None or num_components < 1:
    raise ValueError("The flower prior needs each sample's component and num_components >= 1.")
  if latent_size < 2:
    raise ValueError(f"The flower prior needs latent_size >= 2, got {latent_size}.")
  noise = jax.random.normal(key, (batch, latent_size), jnp.float32)
  angle = flower_angles(num_components)[component]
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  radial = noise[:, 0] * jnp.sqrt(radial_variance)
  tangential = noise[:, 1] * jnp.sqrt(other_variance)
  # Rotate (radial, tangential) from the component's frame into dims 0-1 and add the mean.
  x = cos * (1.0 + radial) - sin * tangential
  y = sin * (1.0 + radial) + cos * tangential
  rest = noise[:, 2:] * jnp.sqrt(other_variance)
  return jnp.concatenate([x[:, None], y[:, None], rest], axis=-1)


def draw_components(key: jax.Array, genres: jax.Array) -> jax.Array:
  """int32 [B]: for each k-hot genre row [B, G], one of its tags drawn uniformly, or G (the
  unlabeled component) for a row without tags."""
  labeled = genres > 0
  unlabeled = ~jnp.any(labeled, axis=-1, keepdims=True)
  choices = jnp.concatenate([labeled, unlabeled], axis=-1)
  logits = jnp.where(choices, 0.0, -jnp.inf)
  return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def nearest_component(codes: np.ndarray, num_components: int) -> np.ndarray:
  """int [N]: the flower component whose mean is nearest to each code.

  ||z - mu_k||^2 = ||z||^2 - 2 z.mu_k + 1, so the nearest mean is the one with the largest
  projection of dims 0-1 on the component's direction.
  """
  angles = np.asarray(flower_angles(num_components))
  directions = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
  return np.argmax(np.asarray(codes)[:, :2] @ directions.T, axis=-1)


def move_to_component(codes: np.ndarray, source: np.ndarray | int, target: np.ndarray | int,
                      num_components: int) -> np.ndarray:
  """Rotates dims 0-1 of each code by 2*pi*(target - source)/K: component source's prior maps
  onto component target's, and a code keeps its offset from its component's mean."""
  codes = np.array(codes, np.float32, copy=True)
  angle = 2.0 * np.pi * (np.asarray(target) - np.asarray(source)) / num_components
  cos, sin = np.cos(angle), np.sin(angle)
  x, y = codes[:, 0].copy(), codes[:, 1].copy()
  codes[:, 0] = cos * x - sin * y
  codes[:, 1] = sin * x + cos * y
  return codes


def interpolate_codes(start: np.ndarray, end: np.ndarray, alphas: np.ndarray,
                spherical: bool = False) -> np.ndarray:
  """[len(alphas), N_z] codes between two [N_z] codes: linear (the paper's), or spherical
  (slerp: keeps the norm's path on the great circle, as MusicVAE offers)."""
  start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
  alphas = np.asarray(alphas, np.float64)[:, None]
  if spherical:
    cos_omega = np.dot(start, end) / max(np.linalg.norm(start) * np.linalg.norm(end), 1e-12)
    omega = np.arccos(np.clip(cos_omega, -1.0, 1.0))
    if omega > 1e-6:
      return ((np.sin((1 - alphas) * omega) * start + np.sin(alphas * omega) * end)
              / np.sin(omega)).astype(np.float32)
  return ((1 - alphas) * start + alphas * end).astype(np.float32)
