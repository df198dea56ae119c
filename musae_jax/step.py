"""The optimizers, schedules, and the pure train and eval steps.

One train step = one autoencoder update and config.optim.critic_steps critic updates, all inside
one function that the trainer jits. As in MusAE's Keras model (one train_on_batch over all
losses), the updates are simultaneous: the encoder's adversarial gradient uses the critic as it
was at the start of the step, and the critic learns from the codes of that same forward pass
(further critic updates redraw eps, prior samples and interpolation weights, not the encoder
forward pass, which is the expensive part).

RNG: every random draw of a step comes from fold_in(key(config.seed), step), so the same config
and seed give bitwise-identical parameters, and a resumed run draws the same numbers.
"""

from typing import Any, Callable

import flax
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import optax

from data_pipeline.tokens import TRACKS
from musae_jax import losses
from musae_jax import priors
from musae_jax import weight_rounding
from musae_jax.model import MusAE, compute_dtype, reparameterize

LR_SCHEDULES = ("exponential", "inverse_time")  # config.optim.lr_schedule's choices.
CRITIC = "critic_net"  # The MusAE attribute holding the critic; everything else is autoencoder.


@flax.struct.dataclass
class TrainState:
  """Everything a training run carries from step to step: a pytree of arrays only."""
  step: jax.Array  # int32 scalar: number of autoencoder updates done.
  params: Any  # nnx.State of the whole MusAE (autoencoder + critic).
  ae_opt_state: Any  # optax state of the encoder + decoders optimizer.
  critic_opt_state: Any  # optax state of the critic optimizer.


def split_params(params: nnx.State) -> tuple[nnx.State, nnx.State]:
  """(autoencoder params, critic params)."""
  critic, autoencoder = nnx.split_state(params, nnx.PathContains(CRITIC), ...)
  return autoencoder, critic


def learning_rate_schedule(optim: ml_collections.ConfigDict) -> optax.Schedule:
  """lr * (1 - d)^t ("exponential") or lr / (1 + d * t) ("inverse_time", Keras' decay)."""
  if optim.lr_schedule == "exponential":
    return optax.exponential_decay(optim.learning_rate, transition_steps=1,
                                   decay_rate=1.0 - optim.lr_decay)
  if optim.lr_schedule == "inverse_time":
    return lambda count: optim.learning_rate / (1.0 + optim.lr_decay * count)
  raise ValueError(f"config.optim.lr_schedule={optim.lr_schedule!r}; expected 'exponential' or "
                   "'inverse_time'.")


def beta_schedule(optim: ml_collections.ConfigDict) -> optax.Schedule:
  """Weight of the adversarial loss: 0, then + beta_increment every beta_every_steps updates,
  capped at beta_max."""
  def beta(step):
    stage = jnp.floor_divide(step, optim.beta_every_steps)
    return jnp.minimum(optim.beta_max, optim.beta_increment * stage).astype(jnp.float32)
  return beta


def make_optimizer(optim: ml_collections.ConfigDict, updates_per_step: int = 1,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Adam with the configured schedule and optional global-norm clipping; with weight_decay,
  AdamW (decoupled decay, scaled by the learning rate) of the weight matrices, not the biases.

  updates_per_step: optimizer updates per train step (critic_steps for the critic), so the
  learning rate follows the train step, not this optimizer's own update count.
  """
  per_update = learning_rate_schedule(optim)
  schedule = per_update if updates_per_step == 1 else (
      lambda count: per_update(count // updates_per_step))
  transforms = []
  if optim.clip_global_norm > 0:
    transforms.append(optax.clip_by_global_norm(optim.clip_global_norm))
  if weight_decay:
    transforms.append(optax.adamw(schedule, b1=optim.b1, b2=optim.b2, weight_decay=weight_decay,
                                  mask=lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)))
  else:  # Adam itself: the paper's optimizer, and the same program as before the option.
    transforms.append(optax.adam(schedule, b1=optim.b1, b2=optim.b2))
  return optax.chain(*transforms)


def make_autoencoder_optimizer(optim: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The encoder's and decoders' optimizer: make_optimizer with the configured weight decay
  (runs saved before the field had none)."""
  return make_optimizer(optim, weight_decay=optim.get("weight_decay", 0.0))


def create_train_state(config: ml_collections.ConfigDict,
                       num_genres: int) -> tuple[nnx.GraphDef, TrainState]:
  """A freshly initialised MusAE (seeded by config.seed) and its optimizer states."""
  init_key = jax.random.split(jax.random.key(config.seed))[1]  # Not any step's key.
  model = MusAE(config.model, num_genres, rngs=nnx.Rngs(params=init_key),
                num_bars=config.data.bars)
  graphdef, params = nnx.split(model, nnx.Param)
  autoencoder, critic = split_params(params)
  state = TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      ae_opt_state=make_autoencoder_optimizer(config.optim).init(autoencoder),
      critic_opt_state=make_optimizer(config.optim, config.optim.critic_steps).init(critic))
  return graphdef, state


def _part_key(key: jax.Array | None, part: int) -> jax.Array | None:
  return None if key is None else jax.random.fold_in(key, part)


def make_train_step(config: ml_collections.ConfigDict, graphdef: nnx.GraphDef,
                    num_genres: int) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """The pure (state, batch) -> (state, metrics) function; the caller jits it.

  batch: {"tokens": int [B, T, 4], "genres": float32 k-hot [B, G]}. Metrics are float32
  scalars; "loss/total" is the autoencoder's objective, reconstruction + beta * adversarial.
  """
  model_config, optim = config.model, config.optim
  prior = model_config.prior
  num_components = priors.component_count(prior, num_genres)
  base_key = jax.random.key(config.seed)
  ae_optimizer = make_autoencoder_optimizer(optim)
  uses_dropout = bool(model_config.get("dropout", 0.0))
  critic_optimizer = make_optimizer(optim, optim.critic_steps)
  lr_fn = learning_rate_schedule(optim)
  beta_fn = beta_schedule(optim)
  rounds_weights = (model_config.get("weight_rounding", "nearest") == "stochastic" and
                    compute_dtype(model_config) == jnp.bfloat16)

  def bf16_weights(params, key):
    """params as the bf16 matmuls will see them: stochastically rounded if configured."""
    return weight_rounding.round_weights(params, key) if rounds_weights else params

  def sample_prior(key, batch, components):
    return priors.sample_prior(key, prior, model_config.latent_size, batch, components,
                               num_components, model_config.flower_radial_variance,
                               model_config.flower_other_variance)

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    tokens = batch["tokens"].astype(jnp.int32)
    batch_size, num_steps = tokens.shape[:2]
    step_key = jax.random.fold_in(base_key, state.step)
    key_eps, key_component, key_critic = jax.random.split(step_key, 3)
    # Its own stream, so that the other keys stay those of runs without dropout.
    key_dropout = jax.random.fold_in(step_key, 3) if uses_dropout else None
    key_rounding = jax.random.fold_in(step_key, 4)  # Likewise.
    autoencoder, critic = split_params(state.params)
    if num_components:
      components = priors.draw_components(key_component, batch["genres"])
      components_one_hot = jax.nn.one_hot(components, num_components, dtype=jnp.float32)
    else:
      components = components_one_hot = None
    beta = beta_fn(state.step)

    def autoencoder_loss(autoencoder):
      model = nnx.merge(graphdef, bf16_weights(autoencoder, _part_key(key_rounding, 0)),
                        bf16_weights(critic, _part_key(key_rounding, 1)))
      mu, logvar = model.encode(tokens, _part_key(key_dropout, 0))
      z = reparameterize(key_eps, mu, logvar)
      logits = model.decode(z, num_steps, _part_key(key_dropout, 1))
      reconstruction, per_track = losses.reconstruction_loss(logits, tokens)
      adversarial = losses.adversarial_loss(model.critic(z, components_one_hot))
      total = reconstruction + beta * adversarial
      aux = dict(z=z, mu=mu, logvar=logvar, reconstruction=reconstruction, per_track=per_track,
                 adversarial=adversarial, accuracy=losses.track_accuracy(logits, tokens))
      return total, aux

    (total, aux), ae_grads = jax.value_and_grad(autoencoder_loss, has_aux=True)(autoencoder)
    mu, logvar = jax.lax.stop_gradient((aux["mu"], aux["logvar"]))

    def critic_loss(critic, key, z_fake, rounding_key):
      key_prior, key_alpha = jax.random.split(key)
      critic = bf16_weights(critic, rounding_key)
      critic_fn = lambda z: nnx.merge(graphdef, autoencoder, critic).critic(z, components_one_hot)
      z_real = sample_prior(key_prior, batch_size, components)
      wasserstein = losses.critic_wasserstein_loss(critic_fn(z_real), critic_fn(z_fake))
      alpha = jax.random.uniform(key_alpha, (batch_size, 1), jnp.float32)
      penalty = losses.gradient_penalty(critic_fn, z_real, z_fake, alpha)
      return wasserstein + optim.gradient_penalty_weight * penalty, penalty

    critic_opt_state = state.critic_opt_state
    critic_metrics = []
    z_fake = jax.lax.stop_gradient(aux["z"])
    for i in range(optim.critic_steps):
      key_i = jax.random.fold_in(key_critic, i)
      if i > 0:  # Fresh codes of the same windows for the extra critic updates.
        z_fake = reparameterize(jax.random.fold_in(key_i, 1), mu, logvar)
      (loss_c, penalty), critic_grads = jax.value_and_grad(critic_loss, has_aux=True)(
          critic, jax.random.fold_in(key_i, 0), z_fake, _part_key(key_rounding, 2 + i))
      updates, critic_opt_state = critic_optimizer.update(critic_grads, critic_opt_state, critic)
      critic = optax.apply_updates(critic, updates)
      critic_metrics.append((loss_c, penalty, optax.tree.norm(critic_grads)))

    updates, ae_opt_state = ae_optimizer.update(ae_grads, state.ae_opt_state, autoencoder)
    autoencoder = optax.apply_updates(autoencoder, updates)

    loss_c, penalty, critic_norm = (jnp.mean(jnp.stack(m)) for m in zip(*critic_metrics))
    metrics = {
        "loss/total": total,
        "loss/reconstruction": aux["reconstruction"],
        "loss/critic": loss_c,
        "loss/gradient_penalty": penalty,
        "loss/adversarial": aux["adversarial"],
        "beta": beta,
        "learning_rate": lr_fn(state.step),
        "grad_norm/autoencoder": optax.tree.norm(ae_grads),
        "grad_norm/critic": critic_norm,
    }
    for i, track in enumerate(TRACKS):
      metrics[f"loss/reconstruction/{track}"] = aux["per_track"][i]
      metrics[f"accuracy/{track}"] = aux["accuracy"][i]
    metrics = {name: jnp.asarray(value, jnp.float32) for name, value in metrics.items()}
    new_state = state.replace(step=state.step + 1,
                              params=nnx.merge_state(autoencoder, critic),
                              ae_opt_state=ae_opt_state, critic_opt_state=critic_opt_state)
    return new_state, metrics

  return train_step


def make_eval_step(config: ml_collections.ConfigDict, graphdef: nnx.GraphDef,
                   num_genres: int) -> Callable[[Any, dict], dict]:
  """The pure (params, batch) -> masked sums function; the caller jits it and adds the sums.

  Codes are the posterior means (z = mu, no sampling). batch["mask"] float32 [B] marks real
  windows (0 for padding rows).
  """
  del config, num_genres  # Evaluation does not depend on the prior.

  def eval_step(params: Any, batch: dict) -> dict:
    tokens = batch["tokens"].astype(jnp.int32)
    mask = batch["mask"].astype(jnp.float32)
    num_steps = tokens.shape[1]
    model = nnx.merge(graphdef, params)
    mu, _ = model.encode(tokens)
    logits = model.decode(mu, num_steps)
    per_window = losses.cross_entropy_per_track(logits, tokens).sum(axis=-1)
    counts = losses.accuracy_sums(logits, tokens, mask)
    sums = {
        "count": mask.sum(),
        "steps": mask.sum() * num_steps,
        "loss/reconstruction": (per_window * mask).sum(),
    }
    for i, track in enumerate(TRACKS):
      sums[f"correct/{track}"] = counts["correct"][i]
      sums[f"note_correct/{track}"] = counts["note_correct"][i]
      sums[f"note_total/{track}"] = counts["note_total"][i]
    return {name: jnp.asarray(value, jnp.float32) for name, value in sums.items()}

  return eval_step
