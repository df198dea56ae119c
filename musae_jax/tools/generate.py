r"""Turns MIDI into MIDI with a trained run: reconstruct, sample, interpolate, transfer, attribute.

  python -m musae_jax.tools.generate --workdir=RUN --out=DIR --mode=reconstruct --input=a.mid \
      [--start_bar=K]
  python -m musae_jax.tools.generate --workdir=RUN --out=DIR --mode=sample --num=8 [--genre=rock] \
      [--temperature=0.5]
  python -m musae_jax.tools.generate --workdir=RUN --out=DIR --mode=interpolate --input=a.mid \
      --input2=b.mid --num=7 [--spherical]
  python -m musae_jax.tools.generate --workdir=RUN --out=DIR --mode=transfer --input=a.mid \
      --genre=rock
  python -m musae_jax.tools.generate --workdir=RUN --out=DIR --mode=attribute --input=a.mid \
      --attribute=bass_note_density --amount=1.5
  python -m musae_jax.tools.generate --workdir=RUN --out=DIR --mode=transfer --input=a.mid \
      --genre=rock --whole_song

With --whole_song (reconstruct, transfer, attribute) the whole song is restyled, not one window:
every non-overlapping window is encoded, moved, decoded, and the windows are stitched back into
one MIDI file of the song's length with its tempo and programs.

Every result is a multitrack MIDI file (the input's programs and tempo, or General MIDI defaults
for samples) and a pianoroll PNG beside it; an interpolation also gets one grid PNG. Each
input-based mode also writes the input window and its plain reconstruction, to compare with.
The attribute vectors come from `python -m musae_jax.tools.attributes --workdir=RUN`. A sample's
temperature scales the prior draw's distance from its component's mean (the decoder is not
autoregressive, so there is no per-step sampling to make more or less random).
"""

import dataclasses
import os
from typing import Callable, Sequence

from absl import flags
import numpy as np

from data_pipeline import midi_io
from data_pipeline import song as song_lib
from data_pipeline import tokens as tokens_lib
from musae_common import cli
from musae_common.errors import UserError
from musae_jax import priors
from musae_jax.tools import attributes
from musae_jax.tools import input_windows
from musae_jax.tools import plots
from musae_jax.tools import runs

MODES = ("reconstruct", "sample", "interpolate", "transfer", "attribute")
DEFAULT_PROGRAMS = (0, 33, 0, 48)  # GM: drum kit, finger bass, grand piano, string ensemble.
DEFAULT_TEMPO_QPM = 120.0


def safe_file_name(text: str) -> str:
  """text with every character but letters, digits and -._ replaced by _ (a name, not a path)."""
  return "".join(c if c.isalnum() or c in "-._" else "_" for c in text)


@dataclasses.dataclass(frozen=True)
class Output:
  """One generated window and the files it was written to."""
  name: str
  tokens: np.ndarray  # uint8 [T, 4] ([N, T, 4] for an interpolation's grid picture)
  paths: tuple[str, ...]  # the .mid, then the .png (the grid: its .png alone)


def write_window(tokens: np.ndarray, out_dir: str, name: str, title: str,
                 programs: Sequence[int] = DEFAULT_PROGRAMS,
                 tempo_qpm: float = DEFAULT_TEMPO_QPM) -> Output:
  """Writes <name>.mid and <name>.png."""
  os.makedirs(out_dir, exist_ok=True)
  midi_path = os.path.join(out_dir, f"{name}.mid")
  midi_io.write_midi(tokens, midi_path, programs=programs, tempo_qpm=tempo_qpm)
  png_path = plots.pianoroll(tokens, os.path.join(out_dir, f"{name}.png"), title=title)
  return Output(name, np.asarray(tokens), (midi_path, png_path))


def _write_input_and_reconstruction(run: runs.Run, window: input_windows.InputWindow,
                                    out_dir: str, base: str
                                    ) -> tuple[np.ndarray, list[Output]]:
  """Writes the input window and its reconstruction; returns (its code [1, N_z], outputs)."""
  code = run.encode(window.tokens[None])
  outputs = [write_window(window.tokens, out_dir, f"{base}_input", f"{base}: input",
                          window.programs, window.tempo_qpm),
             write_window(run.decode(code)[0], out_dir, f"{base}_reconstruction",
                          f"{base}: reconstruction", window.programs, window.tempo_qpm)]
  return code, outputs


def _input_window(run: runs.Run, path: str | None, start_bar: int,
                  flag: str = "--input") -> input_windows.InputWindow:
  if not path:
    raise UserError(f"this mode needs {flag}=FILE.mid")
  return input_windows.song_window(path, run.bars, start_bar)


def _base_name(window: input_windows.InputWindow) -> str:
  return safe_file_name(f"{window.stem}_bar{window.start_bar}")


def reconstruct(run: runs.Run, input_path: str, out_dir: str,
                start_bar: int = -1) -> list[Output]:
  """The input window and its reconstruction."""
  window = _input_window(run, input_path, start_bar)
  return _write_input_and_reconstruction(run, window, out_dir, _base_name(window))[1]


def sample(run: runs.Run, out_dir: str, num: int, genre: str | None = None,
           temperature: float = 1.0, seed: int = 0) -> list[Output]:
  """num windows decoded from prior samples (of one genre's component when given)."""
  if num < 1:
    raise UserError(f"--num={num} must be at least 1.")
  component = runs.genre_component(run, genre) if genre else None
  codes = runs.prior_codes(run, seed, num, component, temperature)
  # The seed and temperature are in the names: another draw into the same --out adds files
  # instead of silently replacing the earlier ones.
  label = (f"_{safe_file_name(genre)}" if genre else "") + f"_seed{seed}" + (
      f"_t{temperature:g}" if temperature != 1.0 else "")
  return [write_window(tokens, out_dir, f"sample{label}_{i:02d}",
                       f"sample{label}_{i:02d} (temperature {temperature:g})")
          for i, tokens in enumerate(run.decode(codes))]


def interpolate(run: runs.Run, input_path: str, input2_path: str, out_dir: str, num: int,
                spherical: bool = False, start_bar: int = -1, start_bar2: int = -1
                ) -> list[Output]:
  """num windows decoded along the line (or arc) between the two inputs' codes, both ends
  included; the last Output is the grid picture alone."""
  if num < 2:
    raise UserError(f"--num={num}: an interpolation needs at least 2 points (both ends).")
  first = _input_window(run, input_path, start_bar)
  second = _input_window(run, input2_path, start_bar2, "--input2")
  codes = run.encode(np.stack([first.tokens, second.tokens]))
  alphas = np.linspace(0.0, 1.0, num)
  decoded = run.decode(priors.interpolate_codes(codes[0], codes[1], alphas, spherical))
  kind = "slerp" if spherical else "lerp"
  base = f"{_base_name(first)}_to_{_base_name(second)}_{kind}"
  outputs = [write_window(tokens, out_dir, f"{base}_{i:02d}_alpha{alpha:.2f}",
                          f"{kind} α={alpha:.2f}", first.programs, first.tempo_qpm)
             for i, (alpha, tokens) in enumerate(zip(alphas, decoded))]
  grid = plots.pianoroll_grid(
      decoded, os.path.join(out_dir, f"{base}_grid.png"),
      column_titles=[f"α={a:.2f}" for a in alphas],
      title=f"{first.stem} (bar {first.start_bar}) → {second.stem} (bar {second.start_bar})")
  return outputs + [Output(f"{base}_grid", decoded, (grid,))]


def transfer(run: runs.Run, input_path: str, out_dir: str, genre: str,
             start_bar: int = -1) -> list[Output]:
  """The input window, its reconstruction, and its code moved to the genre's component."""
  if not genre:
    raise UserError("transfer needs --genre=TAG (the target genre).")
  target = runs.genre_component(run, genre)
  window = _input_window(run, input_path, start_bar)
  base = _base_name(window)
  code, outputs = _write_input_and_reconstruction(run, window, out_dir, base)
  source = int(priors.nearest_component(code, run.num_components)[0])
  moved = priors.move_to_component(code, source, target, run.num_components)
  source_name = runs.component_name(run, source)
  name = f"{base}_{safe_file_name(source_name)}_to_{safe_file_name(genre)}"
  print(f"{window.path}: code is nearest to component {source} ({source_name}); moved to "
        f"{target} ({genre}).")
  return outputs + [write_window(run.decode(moved)[0], out_dir, name,
                                f"{base}: {source_name} → {genre}", window.programs,
                                window.tempo_qpm)]


def attribute(run: runs.Run, input_path: str, out_dir: str, name: str, amount: float,
              start_bar: int = -1) -> list[Output]:
  """The input window, its reconstruction, and its code plus amount times the vector."""
  if not name:
    raise UserError("attribute needs --attribute=NAME (e.g. bass_note_density).")
  vector = attributes.load_vector(run.workdir, name, run.latent_size)
  window = _input_window(run, input_path, start_bar)
  base = _base_name(window)
  code, outputs = _write_input_and_reconstruction(run, window, out_dir, base)
  edited = run.decode(code + amount * vector[None])[0]
  return outputs + [write_window(edited, out_dir, f"{base}_{safe_file_name(name)}_{amount:+g}",
                                 f"{base}: {amount:+g} × {name}", window.programs,
                                 window.tempo_qpm)]


WHOLE_SONG_MODES = ("reconstruct", "transfer", "attribute")


@dataclasses.dataclass(frozen=True)
class RestyledSong:
  """A whole song and its restyled version, both [steps, 4] tokens of the song's length."""
  path: str
  tokens: np.ndarray  # uint8 [S, 4] the song (its main track combination)
  restyled: np.ndarray  # uint8 [S, 4]
  programs: tuple[int, int, int, int]
  tempo_qpm: float
  num_windows: int


def restyle_song(run: runs.Run, path: str,
                 move: Callable[[np.ndarray], np.ndarray], data: bytes | None = None
                 ) -> RestyledSong:
  """Encodes every non-overlapping window of a whole song (the last one padded with silence),
  applies move to the codes [N, N_z], decodes and stitches the windows back to the song's
  length. Rejected songs give the one-line UserError the other modes give."""
  try:
    if data is None:
      with open(path, "rb") as f:
        data = f.read()
    programs, tokens = song_lib.song_tokens(path, data=data)[0]
    tempo_qpm = midi_io.read_midi(data).tempo_qpm
  except OSError as error:
    raise UserError(f"{path}: cannot read the file ({error.strerror}).") from None
  count = -(-len(tokens) // run.num_steps)
  padded = np.full((count * run.num_steps, tokens_lib.NUM_TRACKS), tokens_lib.SILENT, np.uint8)
  padded[:len(tokens)] = tokens
  codes = run.encode(padded.reshape(count, run.num_steps, tokens_lib.NUM_TRACKS))
  decoded = run.decode(np.asarray(move(codes), np.float32))
  restyled = decoded.reshape(-1, tokens_lib.NUM_TRACKS)[:len(tokens)]
  return RestyledSong(path, np.asarray(tokens, np.uint8), restyled, tuple(programs),
                      float(tempo_qpm), count)


def component_move(run: runs.Run, target: int) -> Callable[[np.ndarray], np.ndarray]:
  """Moves each code from its nearest flower component to component target (transfer's
  rotation, per code)."""
  return lambda codes: priors.move_to_component(
      codes, priors.nearest_component(codes, run.num_components), target,
      run.num_components)


def transfer_move(run: runs.Run, genre: str) -> Callable[[np.ndarray], np.ndarray]:
  """Moves each code from its nearest flower component to the genre's (generate's transfer)."""
  return component_move(run, runs.genre_component(run, genre))


def attribute_move(run: runs.Run, name: str, amount: float
                   ) -> Callable[[np.ndarray], np.ndarray]:
  """Adds amount times the attribute vector to each code (generate's attribute)."""
  vector = attributes.load_vector(run.workdir, name, run.latent_size)
  return lambda codes: codes + amount * vector[None]


def whole_song(run: runs.Run, mode: str, input_path: str | None, out_dir: str,
               genre: str | None = None, name: str | None = None,
               amount: float = 1.0) -> list[Output]:
  """A whole song restyled (reconstruct, transfer or attribute), as one MIDI file and PNG."""
  if mode not in WHOLE_SONG_MODES:
    raise UserError(f"--whole_song works with --mode in {WHOLE_SONG_MODES}, not {mode!r}.")
  if not input_path:
    raise UserError("--whole_song needs --input=FILE.mid")
  if mode == "transfer":
    if not genre:
      raise UserError("transfer needs --genre=TAG (the target genre).")
    move, label = transfer_move(run, genre), f"to_{safe_file_name(genre)}"
  elif mode == "attribute":
    if not name:
      raise UserError("attribute needs --attribute=NAME (e.g. bass_note_density).")
    move, label = attribute_move(run, name, amount), f"{safe_file_name(name)}_{amount:+g}"
  else:
    move, label = (lambda codes: codes), "reconstruction"
  input_windows.require_file(input_path)
  song = restyle_song(run, input_path, move)
  stem = safe_file_name(os.path.splitext(os.path.basename(input_path))[0])
  return [write_window(song.restyled, out_dir, f"{stem}_whole_{label}",
                       f"{stem}: whole song, {label} ({song.num_windows} windows)",
                       song.programs, song.tempo_qpm)]


def generate(workdir: str, mode: str, out_dir: str, **options) -> list[Output]:
  """Loads the run and runs one mode; options are the flags' names."""
  if mode not in MODES:
    raise UserError(f"--mode={mode!r} is not one of {MODES}.")
  if options.get("whole_song") and mode not in WHOLE_SONG_MODES:
    raise UserError(f"--whole_song works with --mode in {WHOLE_SONG_MODES}, not {mode!r}.")
  cli.output_folder(out_dir)
  run = runs.load_run(workdir)
  start_bar = options.get("start_bar", -1)
  if options.get("whole_song"):
    return whole_song(run, mode, options.get("input"), out_dir, options.get("genre"),
                      options.get("attribute"), options.get("amount", 1.0))
  if mode == "reconstruct":
    return reconstruct(run, options.get("input"), out_dir, start_bar)
  if mode == "sample":
    return sample(run, out_dir, options.get("num") or 4, options.get("genre"),
                  options.get("temperature", 1.0), options.get("seed", 0))
  if mode == "interpolate":
    return interpolate(run, options.get("input"), options.get("input2"), out_dir,
                       options.get("num") or 7, options.get("spherical", False), start_bar,
                       options.get("start_bar2", -1))
  if mode == "transfer":
    return transfer(run, options.get("input"), out_dir, options.get("genre"), start_bar)
  return attribute(run, options.get("input"), out_dir, options.get("attribute"),
                   options.get("amount", 1.0), start_bar)


def define_flags() -> None:
  """The command-line flags (defined only when run as a program, so importing defines none)."""
  flags.DEFINE_string("workdir", None, "Training run directory (config.json, checkpoints/).")
  flags.DEFINE_enum("mode", None, MODES, "What to generate.")
  flags.DEFINE_string("out", None, "Folder for the MIDI files and PNGs (created if missing).")
  flags.DEFINE_string("input", None, "Input MIDI file (reconstruct, interpolate, transfer, "
                      "attribute).")
  flags.DEFINE_string("input2", None, "Second MIDI file (interpolate: the end point).")
  flags.DEFINE_integer("start_bar", -1, "First bar of the input window, counted from 0 (-1: the "
                       "song's first valid window).")
  flags.DEFINE_integer("start_bar2", -1, "First bar of --input2's window (-1: first valid).")
  flags.DEFINE_integer("num", 0, "sample: how many (default 4); interpolate: points including "
                       "both ends (default 7).")
  flags.DEFINE_string("genre", None, "A genre of the run's genres.json (flower prior): sample "
                      "from its component, or transfer to it.")
  flags.DEFINE_float("temperature", 1.0, "sample: scales each prior draw's distance from its "
                     "component's mean (1 = the prior, <1 = more typical).")
  flags.DEFINE_boolean("spherical", False, "interpolate: spherical (slerp) instead of linear.")
  flags.DEFINE_string("attribute", None, "attribute: a vector name such as bass_note_density "
                      "(see the run's attributes.json).")
  flags.DEFINE_float("amount", 1.0, "attribute: multiple of the attribute vector to add "
                     "(negative removes).")
  flags.DEFINE_integer("seed", 0, "sample: random seed.")
  flags.DEFINE_boolean("whole_song", False, "reconstruct, transfer, attribute: restyle the whole "
                       "song (every non-overlapping window, stitched into one MIDI file).")


def main(argv):
  f = flags.FLAGS
  outputs = cli.run_tool(argv, lambda: generate(
      f.workdir, f.mode, f.out, input=f.input, input2=f.input2, start_bar=f.start_bar,
      start_bar2=f.start_bar2, num=f.num, genre=f.genre, temperature=f.temperature,
      spherical=f.spherical, attribute=f.attribute, amount=f.amount, seed=f.seed,
      whole_song=f.whole_song))
  for output in outputs:
    print("\n".join(output.paths))


def console_main() -> None:
  """The musae-generate console script."""
  cli.run_console(main, __name__, define_flags, ["workdir", "mode", "out"])


if __name__ == "__main__":
  console_main()
