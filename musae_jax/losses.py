"""MusAE's losses and accuracy counts.

  reconstruction   categorical cross-entropy of each track's 130-way softmax, averaged over
                   steps and windows, summed over the 4 tracks (MusAE's Keras losses).
  critic           WGAN-GP: E[critic(z_fake)] - E[critic(z_prior)] + lambda * penalty, where the
                   penalty is E[(||grad critic(z_hat)|| - 1)^2] on random interpolates z_hat.
  adversarial      the encoder's loss -E[critic(z_fake)], weighted by beta in the total.
  accuracy         MusAE's: argmax over all 130 classes, hold and silent steps included.
  note accuracy    the same on the steps whose target is a pitch (a note onset) only.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from data_pipeline.tokens import NUM_PITCHES


def cross_entropy_per_track(logits: jax.Array, tokens: jax.Array) -> jax.Array:
  """logits [B, T, 4, 130], tokens [B, T, 4] -> [B, 4] cross-entropy averaged over steps."""
  per_step = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), tokens.astype(jnp.int32))
  return per_step.mean(axis=1)


def reconstruction_loss(logits: jax.Array, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(the loss: summed over tracks, averaged over windows; per-track losses [4])."""
  per_track = cross_entropy_per_track(logits, tokens).mean(axis=0)
  return per_track.sum(), per_track


def correct_steps(logits: jax.Array, tokens: jax.Array) -> jax.Array:
  """bool [B, T, 4]: the most likely class is the target."""
  return jnp.argmax(logits, axis=-1) == tokens.astype(jnp.int32)


def track_accuracy(logits: jax.Array, tokens: jax.Array) -> jax.Array:
  """[4]: MusAE's accuracy of each track (every step counts)."""
  return correct_steps(logits, tokens).mean(axis=(0, 1))


def accuracy_sums(logits: jax.Array, tokens: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
  """Masked counts behind accuracy and note accuracy, to be summed over batches.

  mask: float [B], 1 for a real window, 0 for padding. Returns float32 arrays of shape [4]:
  "correct" (correct steps), "note_correct" (correct steps whose target is a pitch) and
  "note_total" (steps whose target is a pitch).
  """
  weights = mask.astype(jnp.float32)[:, None, None]
  correct = correct_steps(logits, tokens).astype(jnp.float32) * weights
  is_note = (tokens.astype(jnp.int32) < NUM_PITCHES).astype(jnp.float32) * weights
  return {
      "correct": correct.sum(axis=(0, 1)),
      "note_correct": (correct * is_note).sum(axis=(0, 1)),
      "note_total": is_note.sum(axis=(0, 1)),
  }


def critic_wasserstein_loss(real_scores: jax.Array, fake_scores: jax.Array) -> jax.Array:
  """The critic's estimate of -W(prior, codes): it learns to score prior samples high."""
  return fake_scores.mean() - real_scores.mean()


def adversarial_loss(fake_scores: jax.Array) -> jax.Array:
  """The encoder's side of the game: make its codes score like prior samples."""
  return -fake_scores.mean()


def gradient_penalty(critic_fn: Callable[[jax.Array], jax.Array], z_real: jax.Array,
                     z_fake: jax.Array, alpha: jax.Array) -> jax.Array:
  """E[(||d critic / d z_hat|| - 1)^2] at z_hat = alpha * z_real + (1 - alpha) * z_fake.

  critic_fn maps codes [B, N_z] to scores [B], one per row independently, so the gradient of
  the summed scores gives each row's own input gradient. alpha: [B, 1] uniform in [0, 1].
  """
  z_hat = alpha * z_real + (1.0 - alpha) * z_fake
  grads = jax.grad(lambda z: critic_fn(z).sum())(z_hat)
  # The epsilon keeps the norm differentiable where the gradient vanishes.
  norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=-1) + 1e-12)
  return jnp.mean(jnp.square(norms - 1.0))
