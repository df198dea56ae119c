"""config.model.decoder="hierarchical": MusicVAE's conductor with MusAE's track decoders.

Shapes, what each bar is decoded from, gradients, the batched decoders, checkpoints of the other
kind refused, and a run trained with it going through the tools."""

import glob
import pathlib

from flax import nnx
import jax
import numpy as np
import pytest

from configs import default
from data_pipeline.tokens import NUM_CLASSES, STEPS_PER_BAR, TRACKS
from musae_common.errors import UserError
from musae_jax import checkpointing
from musae_jax import config_checks
from musae_jax import lstm
from musae_jax.model import MusAE
from tests.train_helpers import assert_loss_and_grads_close
from tests.train_helpers import assert_new_shape_field_resumes_old_runs_and_refuses_other_values
from tests.train_helpers import reconstruction_loss_and_grads as loss_and_grads

REPO = pathlib.Path(__file__).resolve().parents[1]
BATCH = 3


def _model_config(**overrides):
  config = default.get_config().model
  config.update(hidden_size=12, latent_size=6, critic_hidden_size=10, encoder_layers=2,
                decoder_layers=2, residual=True, lstm_impl="reference", decoder="hierarchical",
                conductor_hidden_size=7, conductor_layers=2)
  config.update(overrides)
  return config


_decode = nnx.jit(lambda model, z, steps: model.decode(z, steps), static_argnums=2)


def _z(seed=0):
  return jax.random.normal(jax.random.key(seed), (BATCH, 6))


def test_parameters_and_shapes():
  model = MusAE(_model_config(), num_genres=0, rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  conductor = params["conductor"]
  assert conductor["layers"][0]["w_ih"].shape == (6, 28)  # Reads z at every bar.
  assert conductor["layers"][1]["w_hh"].shape == (7, 28)
  drums = params["decoders"]["drums"]
  assert drums["layers"][0]["w_ih"].shape == (6 + 7, 48)  # [z, the bar's embedding].
  assert drums["initial_state"]["kernel"].shape == (7, 12)  # State from the bar's embedding.
  for bars in (1, 2, 16):
    logits = _decode(model, _z(), bars * STEPS_PER_BAR)
    assert logits.shape == (BATCH, bars * STEPS_PER_BAR, 4, NUM_CLASSES)
  with pytest.raises(ValueError, match="whole bars"):
    model.decode(_z(), 24)
  flat = MusAE(_model_config(decoder="flat"), num_genres=0, rngs=nnx.Rngs(0))
  assert "conductor" not in nnx.state(flat, nnx.Param)


def test_each_bar_is_decoded_from_its_own_embedding():
  model = MusAE(_model_config(), num_genres=0, rngs=nnx.Rngs(0))
  two_bars = np.asarray(_decode(model, _z(), 2 * STEPS_PER_BAR))
  # The conductor is causal: bar 1 of a 2-bar window is the 1-bar window.
  np.testing.assert_allclose(two_bars[:, :STEPS_PER_BAR], _decode(model, _z(), STEPS_PER_BAR),
                             rtol=1e-5, atol=1e-6)
  # The bars differ only through their embeddings: the same z, another bar.
  assert np.abs(two_bars[:, STEPS_PER_BAR:] - two_bars[:, :STEPS_PER_BAR]).max() > 1e-3
  # Each bar starts afresh (its decoders' state comes from its embedding), and the windows of
  # a batch stay apart: another z in row 0 leaves rows 1 and 2 as they were.
  other = _z().at[0].set(_z(5)[0])
  changed = np.asarray(_decode(model, other, 2 * STEPS_PER_BAR))
  np.testing.assert_allclose(changed[1:], two_bars[1:], rtol=1e-5, atol=1e-6)
  assert np.abs(changed[0] - two_bars[0]).max() > 1e-3


def test_gradients_reach_the_conductor_and_batched_decoders_agree(monkeypatch):
  tokens = jax.random.randint(jax.random.key(1), (BATCH, 2 * STEPS_PER_BAR, 4), 0, NUM_CLASSES)
  value, grads = loss_and_grads(_model_config(), tokens)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    if "critic_net" not in jax.tree_util.keystr(path):
      assert np.any(np.asarray(grad) != 0), jax.tree_util.keystr(path)
  # Accelerators vmap the four decoders (with the conductor's embeddings shared): same numbers.
  monkeypatch.setattr(lstm, "batches_well", lambda: True)
  assert_loss_and_grads_close(loss_and_grads(_model_config(), tokens), (value, grads),
                              value_rtol=1e-6, grad_rtol=1e-4)


def test_the_hierarchical_model_on_cudnn_is_the_model_on_the_reference_kernel():
  tokens = jax.random.randint(jax.random.key(2), (BATCH, 2 * STEPS_PER_BAR, 4), 0, NUM_CLASSES)
  assert_loss_and_grads_close(loss_and_grads(_model_config(lstm_impl="cudnn"), tokens),
                              loss_and_grads(_model_config(), tokens),
                              value_rtol=1e-5, grad_rtol=1e-3)


def test_a_checkpoint_of_the_other_decoder_is_refused_with_the_fields_named():
  config = default.get_config()
  saved_flat = checkpointing.config_to_dict(config)
  del saved_flat["model"]["decoder"]  # A run saved before the field existed: flat.
  checkpointing.check_compatible(saved_flat, config, "run")  # Flat on flat: fine.
  hierarchical = default.get_config()
  hierarchical.model.decoder = "hierarchical"
  with pytest.raises(UserError, match=r"model.decoder: checkpoint 'flat' vs config "
                                      r"'hierarchical'"):
    checkpointing.check_compatible(saved_flat, hierarchical, "run")
  saved_hierarchical = checkpointing.config_to_dict(hierarchical)
  hierarchical.model.conductor_hidden_size = 256
  with pytest.raises(UserError, match="model.conductor_hidden_size: checkpoint 512 vs config 256"):
    checkpointing.check_compatible(saved_hierarchical, hierarchical, "run")


# The LSTM paths over the bars, and the direct ones (encoder_bar_reader, conductor).
@pytest.mark.parametrize("bar_reader,conductor", [("lstm", "lstm"), ("concat", "linear")])
def test_a_hierarchical_run_trains_resumes_and_goes_through_the_tools(tmp_path, demo_data_dir,
                                                                      bar_reader, conductor):
  from configs import demo  # pylint: disable=g-import-not-at-top
  from musae_jax import train  # pylint: disable=g-import-not-at-top
  from musae_jax.tools import evaluate  # pylint: disable=g-import-not-at-top
  from musae_jax.tools import generate  # pylint: disable=g-import-not-at-top
  from musae_jax.tools import input_windows  # pylint: disable=g-import-not-at-top
  from musae_jax.tools import runs  # pylint: disable=g-import-not-at-top
  config = demo.get_config()
  config.data.data_dir = demo_data_dir
  config.data.bars = 2
  config.batch_size = 4
  config.num_train_steps = 6
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 3
  config.num_eval_batches = 1
  config.model.update(hidden_size=16, latent_size=8, critic_hidden_size=8, encoder_layers=1,
                      decoder_layers=1, decoder="hierarchical", conductor_hidden_size=8,
                      conductor_layers=1, encoder="hierarchical",
                      encoder_bar_reader=bar_reader, conductor=conductor)
  workdir = str(tmp_path / "run")
  metrics = train.train_and_evaluate(config, workdir)
  assert 0.0 < metrics["validation/accuracy/mean"] <= 1.0
  flat = config.copy_and_resolve_references()
  flat.model.update(decoder="flat", conductor="lstm")  # A flat decoder has no conductor.
  flat.num_train_steps = 9
  with pytest.raises(UserError, match="model.decoder: checkpoint 'hierarchical' vs config 'flat'"):
    train.train_and_evaluate(flat, workdir)
  flat.model.update(decoder="hierarchical", conductor=conductor, encoder="flat",
                    encoder_bar_reader="lstm")
  with pytest.raises(UserError, match="model.encoder: checkpoint 'hierarchical' vs config 'flat'"):
    train.train_and_evaluate(flat, workdir)

  song = sorted(glob.glob(str(REPO / "demo_data" / "midi" / "**" / "*.mid"), recursive=True))[0]
  for mode, options in (("sample", {"num": 2}), ("reconstruct", {"input": song}),
                        ("interpolate", {"input": song, "input2": song, "num": 3})):
    outputs = generate.generate(workdir, mode, str(tmp_path / mode), **options)
    assert outputs and all(pathlib.Path(p).exists() for o in outputs for p in o.paths)
  song_outputs = generate.generate(workdir, "reconstruct", str(tmp_path / "song"), input=song,
                                   whole_song=True)
  assert song_outputs
  run = runs.load_run(workdir)
  windows = input_windows.run_windows(run, split="validation", max_windows=16)
  result = evaluate.evaluate(run, windows, str(tmp_path / "eval"), num_pairs=4,
                             samples_per_component=8)
  assert 0.0 <= result["accuracy"]["mean"] <= 1.0


def test_the_linear_conductor_gives_each_bar_its_own_map_of_z():
  """conductor="linear": bar k's embedding is tanh(z W_k + b_k), its own columns of one matmul."""
  model = MusAE(_model_config(conductor="linear"), num_genres=0, rngs=nnx.Rngs(0), num_bars=4)
  conductor = model.conductor
  kernel, bias = conductor.embeddings.kernel[...], conductor.embeddings.bias[...]
  assert kernel.shape == (6, 4 * 7) and "layers" not in nnx.state(conductor, nnx.Param)
  z = _z()
  embeddings = conductor(z, 4)
  assert embeddings.shape == (4, BATCH, 7)
  for bar in range(4):
    columns = slice(bar * 7, (bar + 1) * 7)
    np.testing.assert_allclose(embeddings[bar], np.tanh(z @ kernel[:, columns] + bias[columns]),
                               rtol=1e-5, atol=1e-6)
  assert _decode(model, z, 4 * STEPS_PER_BAR).shape == (BATCH, 4 * STEPS_PER_BAR, 4, NUM_CLASSES)
  grads = nnx.grad(lambda m: jax.numpy.sum(m.decode(z, 4 * STEPS_PER_BAR) ** 2))(model)
  assert float(jax.numpy.abs(grads.conductor.embeddings.kernel[...]).max()) > 0
  with pytest.raises(ValueError, match="emits 4 bars, not 2"):
    model.decode(z, 2 * STEPS_PER_BAR)
  with pytest.raises(ValueError, match="needs the window's number of bars"):
    MusAE(_model_config(conductor="linear"), num_genres=0, rngs=nnx.Rngs(0))
  # Checkpoints: runs saved before the field had the LSTM conductor; the other is refused.
  config = default.get_config()
  config.model.decoder = "hierarchical"
  assert_new_shape_field_resumes_old_runs_and_refuses_other_values(config, "conductor", "linear")
  config.model.decoder = "flat"
  with pytest.raises(UserError, match="the flat decoder has none"):
    config_checks.validate(config)
