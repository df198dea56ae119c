r"""Where the time of one training step goes on CPU, by op category, from a jax.profiler trace.

  python benchmarks/step_profile.py --bars=2 --hidden=256 --latent=128 --batch=64 \
      --dtype=bfloat16 --impl=cpu_fused [--steps=3 --warmup=2] [--top=15] [--trace_dir=DIR]
      [every other flag of musae_jax.benchmark: --prior, --decoder, --encoder, --layers, ...]

Builds exactly the step that `python -m musae_jax.benchmark` times, with the same flags
(musae_jax.benchmark.make_step: musae_jax.step.make_train_step, jitted with the state donated, on
the same synthetic batches), compiles it, runs --warmup untraced steps, then, under
jax.profiler.trace, one more step it does not count (so that the profiler's start-up falls
outside the counted steps) and --steps steps, each inside a StepTraceAnnotation so that the trace
has the step's wall window; then it reads the Perfetto JSON trace that jax.profiler writes
(perfetto_trace.json.gz) with the standard library. It prints:

  * a table, one row per op category: ms per step (the ops' share of the step's wall time, see
    below), % of the step, in-flight ms per step (the sum of the ops' latencies, from start to
    completion, which exceeds the share where ops overlap), ops executed per step, and for dots
    their GFLOP/s while in flight (analytic FLOPs from the HLO shapes); the rows sum to the
    step's wall time;
  * the coverage: the share of the step's wall time during which at least one op was in flight,
    and the wall time measured around each step by the script (perf_counter) next to the trace's;
  * the --top ops by ms per step, with their category, executions per step, shapes (operands ->
    result; for a fusion with a dot, the dot's) and the JAX op that produced them;
  * last, one JSON line with the same numbers.

Absolute numbers vary with the load of the machine; run it on idle cores for timings to quote.

What the script relies on (jax/jaxlib 0.10.2, XLA:CPU thunk runtime):
  * While a profiler session is active, XLA:CPU's ThunkExecutor (TracedExecute, in
    xla/backends/cpu/runtime/thunk_executor.cc) wraps every thunk's Execute call in a TraceMe named
    after the HLO instruction, with args hlo_module, hlo_op, run_id and device_ordinal, and when the
    thunk's completion event becomes available it records a zero-length "end: <op>" event. No flag
    is needed: --xla_cpu_enable_xprof_traceme only instrumented the generated code of the old
    (pre-thunk) CPU runtime. Thunks of nested computations (while bodies, calls) get their own
    events, inside the while/call thunk's.
  * A thunk runs either inline (its event covers all its work; custom-calls, YNNPACK fusions) or
    asynchronously: kernel and Eigen dot thunks split over the intra-op thread pool can return
    before their tasks finish, and those tasks carry no events of their own. So an op is in
    flight from the start of its event to the later of the event's end and its "end: " event
    (paired per op name in time order). The step's wall time is split instant by instant: each op
    inside its event holds one thread; the pool's other threads (the CPUs the process may run on,
    which is how XLA:CPU sizes the pool) go, evenly, to the asynchronous ops in flight, whose
    tasks can only run there; the instant is shared evenly among the threads so in use. So a
    small asynchronous op queued behind long inline ops gets little, and "in-flight ms" (its
    latency) can be much larger than its share. Executor overhead and idle time inside the
    executable, and the step's time outside it (dispatch, handing over arguments and results),
    get rows of their own. A while/call/conditional thunk whose body runs as thunks of its own
    (events inside its event, on its thread) holds its thread only outside them: the body's ops
    carry their own time, and the loop's own overhead is "control flow".
  * The categories come from the compiled HLO text (jitted.lower(...).compile().as_text()), whose
    instruction names are the thunks' names: custom-calls by target (the fused LSTM kernel is
    musae_lstm_forward_train / _infer / musae_lstm_backward, and musae_transpose_to_bf16 feeds its
    bf16 weight gradients; see musae_jax/lstm_cpu.py), dots and convolutions by operand dtype,
    fusions that contain a dot (YNNPACK's __ynn_fusion or XLA's) by the dot's operand dtype,
    reductions, dtype converts, data movement (copy, transpose, concatenate, slice, pad,
    broadcast and fusions of only those), other elementwise fusions, and the rest.
"""

import collections
import dataclasses
import gzip
import inspect
import json
import math
import os
import pathlib
import re
import statistics
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

from musae_common import cli
from musae_common import errors
from musae_jax import benchmark

flags.adopt_module_key_flags(benchmark)  # --help lists the step's flags too.
_TOP = flags.DEFINE_integer("top", 15, "Individual ops listed, the most expensive first.")
_TRACE_DIR = flags.DEFINE_string("trace_dir", None,
                                 "Where jax.profiler writes the trace (kept, for Perfetto or "
                                 "TensorBoard); default: a temporary directory, removed after.")

_STEP_ANNOTATION = "step_profile_step"
_CONTROL_FLOW = {"while", "call", "conditional"}
_DOTS = {"dot", "convolution"}
_REDUCTIONS = {"reduce", "reduce-window", "select-and-scatter", "scatter"}
# Ops that move or reinterpret data without arithmetic.
_MOVEMENT = {"parameter", "constant", "bitcast", "copy", "transpose", "reshape", "broadcast",
             "slice", "dynamic-slice", "dynamic-update-slice", "concatenate", "pad", "reverse",
             "tuple", "get-tuple-element", "iota"}
_NO_OP = "no op in flight (executor, idle)"
_OUTSIDE = "outside the executable (dispatch, results)"


@dataclasses.dataclass
class Instruction:
  """One instruction of the compiled HLO text."""
  name: str
  shape: str  # Without layouts, e.g. "bf16[256,1024]" or "(f32[2], f32[3])".
  opcode: str
  operands: list[str]
  attributes: str
  computation: str


@dataclasses.dataclass
class HloModule:
  name: str
  instructions: dict[str, Instruction]
  computations: dict[str, list[str]]  # Computation name -> its instructions' names.


@dataclasses.dataclass
class OpInfo:
  """What the HLO text says about the op a thunk runs."""
  category: str
  shapes: str
  source: str  # The JAX op that produced it (the metadata's op_name).
  flops: int  # Dot FLOPs per execution (0 for other ops, convolutions included).


def _matching(text: str, start: int) -> int:
  """The index just after the bracket that closes the one at text[start]."""
  closing = {"(": ")", "{": "}", "[": "]"}
  depth = []
  for i in range(start, len(text)):
    if text[i] in closing:
      depth.append(closing[text[i]])
    elif depth and text[i] == depth[-1]:
      depth.pop()
      if not depth:
        return i + 1
  return len(text)


def _strip_layouts(shape: str) -> str:
  shape = re.sub(r"\{[^{}]*\}", "", shape)
  return re.sub(r"/\*index=\d+\*/", "", shape)


def parse_hlo(text: str) -> HloModule:
  """The instructions of an HLO module's text (HloModule::ToString), by name."""
  module = re.match(r"HloModule\s+([\w.\-]+)", text)
  instructions, computations = {}, {}
  computation = None
  for line in text.splitlines():
    stripped = line.strip()
    if stripped.endswith("{") and "=" not in stripped.split("(")[0]:
      header = re.match(r"(?:ENTRY\s+)?%?([\w.\-]+)", stripped)
      computation = header.group(1)
      computations[computation] = []
      continue
    match = re.match(r"(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*", stripped)
    if computation is None or match is None:
      continue
    rest = stripped[match.end():]
    shape_end = _matching(rest, 0) if rest.startswith("(") else rest.find(" ")
    opcode = re.match(r"\s*([\w\-]+)\(", rest[shape_end:])
    if opcode is None:
      continue
    operands_start = shape_end + opcode.end() - 1
    operands_end = _matching(rest, operands_start)
    instruction = Instruction(
        name=match.group(1), shape=_strip_layouts(rest[:shape_end]), opcode=opcode.group(1),
        operands=re.findall(r"%([\w.\-]+)", rest[operands_start:operands_end]),
        attributes=rest[operands_end:], computation=computation)
    instructions[instruction.name] = instruction
    computations[computation].append(instruction.name)
  return HloModule(module.group(1) if module else "", instructions, computations)


def _dtype(shape: str) -> str:
  match = re.match(r"\(?\s*(\w+)\[", shape)
  return match.group(1) if match else "?"


def _dims(shape: str) -> list[int]:
  match = re.match(r"\w+\[([\d,]*)\]", shape)
  return [int(d) for d in match.group(1).split(",") if d] if match else []


def _called(instruction: Instruction) -> list[str]:
  return re.findall(r"(?:calls|to_apply|body|condition)=%([\w.\-]+)", instruction.attributes)


def _body(module: HloModule, instruction: Instruction) -> list[Instruction]:
  """The instructions of the computations an instruction calls, nested calls included."""
  found, pending, seen = [], _called(instruction), set()
  while pending:
    computation = pending.pop()
    if computation in seen:
      continue
    seen.add(computation)
    for name in module.computations.get(computation, ()):
      found.append(module.instructions[name])
      pending.extend(_called(module.instructions[name]))
  return found


def _operand_shapes(module: HloModule, instruction: Instruction) -> list[str]:
  return [module.instructions[name].shape if name in module.instructions else "?"
          for name in instruction.operands]


def _dot_flops(module: HloModule, dot: Instruction) -> int:
  """2 x result elements x contracted elements; 0 for a convolution (not counted)."""
  if dot.opcode != "dot":
    return 0
  operands = _operand_shapes(module, dot)
  contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", dot.attributes)
  lhs = _dims(operands[0]) if operands else []
  contracted = math.prod(lhs[int(d)] for d in contracting.group(1).split(",") if d) if (
      contracting and lhs) else 1
  return 2 * math.prod(_dims(dot.shape)) * contracted


def _dot_dtype(module: HloModule, dot: Instruction) -> str:
  dtypes = [_dtype(shape) for shape in _operand_shapes(module, dot)[:2]]
  return dtypes[0] if len(set(dtypes)) == 1 else "x".join(dtypes)


def _dot_shapes(module: HloModule, dot: Instruction) -> str:
  return f"{' . '.join(_operand_shapes(module, dot)[:2])} -> {dot.shape}"


def _source(instruction: Instruction) -> str:
  """The JAX op behind an instruction and, for a custom-call, its attributes (bf16, reverse)."""
  match = re.search(r'op_name="([^"]*)"', instruction.attributes)
  # Instructions XLA added (copies of loop-carried values, ...) have none: where they run says more.
  source = re.sub(r"^jit\([\w.]+\)/", "", match.group(1)) if match else (
      f"in {instruction.computation}")
  config = re.search(r"backend_config=\{([^{}]*=[^{}]*)\}", instruction.attributes)
  if instruction.opcode == "custom-call" and config:
    source += f"; {config.group(1).replace(' = ', '=')}"
  return source


def _compact(shapes: str, width: int = 120) -> str:
  return shapes if len(shapes) <= width else shapes[:width - 3] + "..."


def classify(module: HloModule, name: str) -> OpInfo:
  """The category, shapes, source and FLOPs of the op a thunk named name runs."""
  instruction = module.instructions.get(name)
  if instruction is None:
    return OpInfo("other (not in the HLO text)", "", "", 0)
  opcode = instruction.opcode
  shapes = _compact(f"{', '.join(_operand_shapes(module, instruction))} -> {instruction.shape}")
  source = _source(instruction)
  if opcode == "custom-call":
    target = re.search(r'custom_call_target="([^"]*)"', instruction.attributes)
    return OpInfo(f"custom-call {target.group(1) if target else '?'}", shapes, source, 0)
  if opcode in _DOTS:
    return OpInfo(f"{opcode} {_dot_dtype(module, instruction)}", _dot_shapes(module, instruction),
                  source, _dot_flops(module, instruction))
  if opcode in _CONTROL_FLOW:
    return OpInfo("control flow (while/call/conditional)", instruction.shape, source, 0)
  body = _body(module, instruction) if opcode == "fusion" else [instruction]
  opcodes = {op.opcode for op in body}
  dots = [op for op in body if op.opcode in _DOTS]
  if dots:
    largest = max(dots, key=lambda dot: _dot_flops(module, dot))
    return OpInfo(f"{largest.opcode} fusion {_dot_dtype(module, largest)}",
                  _dot_shapes(module, largest), source,
                  sum(_dot_flops(module, dot) for dot in dots))
  if opcodes & _REDUCTIONS:
    category = "reduction"
  elif opcodes <= _MOVEMENT:
    category = "copy/transpose/layout"
  elif opcodes <= _MOVEMENT | {"convert"}:
    category = "convert (dtype casts)"
  elif opcode == "fusion":
    category = "elementwise fusion"
  else:
    category = f"other ({opcode})"
  return OpInfo(category, shapes, source, 0)


@dataclasses.dataclass
class Occurrence:
  """One execution of an op, in microseconds on the trace's clock: its event (the thunk's Execute
  call) spans start..returned, and it completed at end (later than returned where it ran
  asynchronously on the thread pool). inline: the parts of its event outside the events of the
  thunks it ran itself (a while loop's body); all of it for other ops."""
  name: str
  start: float
  returned: float
  end: float
  inline: list[tuple[float, float]] = dataclasses.field(default_factory=list)

  def in_flight(self) -> float:
    return sum(b - a for a, b in self.inline) + self.end - self.returned


def _own_parts(span: tuple[float, float], nested: list[tuple[float, float]]
               ) -> list[tuple[float, float]]:
  """span minus the (disjoint, sorted) nested intervals inside it."""
  parts, last = [], span[0]
  for a, b in nested:
    if a > last:
      parts.append((last, a))
    last = max(last, b)
  if span[1] > last:
    parts.append((last, span[1]))
  return parts


def read_trace(path: pathlib.Path, module_name: str):
  """The step windows [(start, end)], the executable's runs [(start, end)] (microseconds) and the
  executions of module_name's ops in a Perfetto JSON trace."""
  with gzip.open(path, "rt") as f:
    events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
  events.sort(key=lambda e: e["ts"])
  steps = [(e["ts"], e["ts"] + e["dur"]) for e in events if e["name"] == _STEP_ANNOTATION]
  runs = [(e["ts"], e["ts"] + e["dur"]) for e in events
          if e["name"].startswith("ThunkExecutor::Execute (wait for completion)")]
  starts, ends = collections.defaultdict(list), collections.defaultdict(list)
  for e in events:
    if e.get("args", {}).get("hlo_module") == module_name and "hlo_op" in e["args"]:
      starts[e["args"]["hlo_op"]].append(e)
    elif e["name"].startswith("end: "):
      ends[e["name"][len("end: "):]].append(e)
  # Events on one thread nest (TraceMe scopes): an event inside another is a thunk of the outer
  # one's body, run inline by it.
  nested = collections.defaultdict(list)  # id(outer event) -> its direct children's spans.
  by_thread = collections.defaultdict(list)
  for started in starts.values():
    for e in started:
      by_thread[e["tid"]].append(e)
  for thread_events in by_thread.values():
    stack = []
    for e in sorted(thread_events, key=lambda e: (e["ts"], -e["dur"])):
      while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
        stack.pop()
      if stack:
        nested[id(stack[-1])].append((e["ts"], e["ts"] + e["dur"]))
      stack.append(e)
  occurrences = []
  for name, started in starts.items():
    # The k-th completion of an op is its k-th execution's: the executor runs an op again only
    # after its previous execution completed (a loop body waits for the iteration before).
    completed = ends.get(name, [])
    paired = len(completed) == len(started)
    for k, e in enumerate(started):
      returned = e["ts"] + e["dur"]
      end = max(returned, completed[k]["ts"] + completed[k]["dur"]) if paired else returned
      occurrences.append(Occurrence(name, e["ts"], returned, end,
                                    _own_parts((e["ts"], returned), nested[id(e)])))
  return steps, runs, occurrences


def split_wall_time(window: tuple[float, float], occurrences: list[Occurrence], threads: int
                    ) -> tuple[dict[str, float], float]:
  """Each op's share of the window's wall time and the time with no op in flight (microseconds).

  At each instant, an op inside its event holds a thread; `threads` minus those is what the ops
  running asynchronously (returned, not yet completed) can have, shared evenly among them: their
  tasks run on the pool's threads without events, so they only progress on a thread that no
  event holds. The instant's time is split among the threads in use, evenly.
  """
  boundaries = []
  clip = lambda a, b: (max(a, window[0]), min(b, window[1]))
  for i, o in enumerate(occurrences):
    for a, b in [clip(*part) for part in o.inline]:
      if b > a:
        boundaries += [(a, "inline", i, 1), (b, "inline", i, -1)]
    a, b = clip(o.returned, o.end)
    if b > a:
      boundaries += [(a, "async", i, 1), (b, "async", i, -1)]
  boundaries.sort(key=lambda b: b[0])
  shares = collections.defaultdict(float)
  active = {"inline": set(), "async": set()}
  idle, last = 0.0, window[0]
  for t, phase, i, change in boundaries:
    if t > last:
      inline, pending = active["inline"], active["async"]
      free = max(threads - len(inline), 0) if pending else 0
      if inline or free:
        used = len(inline) + free
        for j in inline:
          shares[occurrences[j].name] += (t - last) / used
        for j in pending if free else ():
          shares[occurrences[j].name] += (t - last) * free / used / len(pending)
      else:
        idle += t - last
      last = t
    (active[phase].add if change > 0 else active[phase].discard)(i)
  idle += window[1] - last
  return shares, idle


def _trace_file(trace_dir: pathlib.Path) -> pathlib.Path:
  traces = sorted(trace_dir.glob("plugins/profile/*/perfetto_trace.json.gz"))
  if not traces:
    raise errors.UserError(f"jax.profiler wrote no perfetto_trace.json.gz under {trace_dir}.")
  return traces[-1]


def profile(trace_dir: pathlib.Path, steps: int, warmup: int, top: int, **step_flags) -> dict:
  """Compiles the benchmark's step, traces `steps` steps after `warmup` and returns the record."""
  import jax  # pylint: disable=g-import-not-at-top

  train_step, state, batches, impl = benchmark.make_step(**step_flags)
  compiled = train_step.lower(state, batches[0]).compile()
  module = parse_hlo(compiled.as_text())
  metrics = None
  for i in range(warmup):
    state, metrics = compiled(state, batches[i % len(batches)])
  jax.block_until_ready((state, metrics))

  options = jax.profiler.ProfileOptions()
  options.python_tracer_level = 0  # Python function events would only slow the dispatch down.
  wall = []
  with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True, profiler_options=options):
    # Not counted, so that the profiler's start-up (its threads, its buffers) is not either.
    state, metrics = compiled(state, batches[warmup % len(batches)])
    jax.block_until_ready((state, metrics))
    for i in range(steps):
      start = time.perf_counter()
      with jax.profiler.StepTraceAnnotation(_STEP_ANNOTATION, step_num=i):
        state, metrics = compiled(state, batches[(warmup + 1 + i) % len(batches)])
        jax.block_until_ready((state, metrics))
      wall.append(time.perf_counter() - start)

  windows, runs, occurrences = read_trace(_trace_file(trace_dir), module.name)
  if not occurrences or not windows:
    raise errors.UserError(f"The trace has no {'op' if windows else 'step'} events of "
                           f"{module.name}: the script reads XLA:CPU's thunk annotations "
                           f"(jax 0.10), and this run is on {jax.devices()[0].platform} with jax "
                           f"{jax.__version__}.")
  infos = {name: classify(module, name) for name in {o.name for o in occurrences}}
  # XLA:CPU sizes its intra-op thread pool by the CPUs this process may run on
  # (DefaultThreadPoolSize, in the PjRt CPU client).
  threads = len(os.sched_getaffinity(0))

  wall_us, in_flight_us = collections.defaultdict(float), collections.defaultdict(float)
  executions = collections.Counter()
  idle_us = outside_us = 0.0
  for window in windows:
    in_window = [o for o in occurrences if window[0] <= o.start < window[1]]
    shares, idle = split_wall_time(window, in_window, threads)
    for name, share in shares.items():
      wall_us[name] += share
    for o in in_window:
      in_flight_us[o.name] += o.in_flight()
      executions[o.name] += 1
    # Time with no op in flight, before the executable started or after it finished, is the
    # step's host side; the rest is the executor's own (scheduling, waiting for a thread).
    run = [r for r in runs if window[0] <= r[0] < window[1]]
    if run:
      exec_start, exec_end = min(r[0] for r in run), max(r[1] for r in run)
    elif in_window:
      exec_start, exec_end = min(o.start for o in in_window), max(o.end for o in in_window)
    else:  # Nothing of the executable ran in this step's window.
      exec_start, exec_end = window
    outside = max(0.0, exec_start - window[0]) + max(0.0, window[1] - exec_end)
    outside_us += min(outside, idle)
    idle_us += idle - min(outside, idle)

  count = len(windows)
  per_step = lambda us: us / count / 1e3  # Microseconds over all steps -> ms per step.
  step_ms = per_step(sum(w[1] - w[0] for w in windows))
  categories = collections.defaultdict(lambda: {"ms": 0.0, "in_flight_ms": 0.0, "ops": 0.0,
                                                "gflop": 0.0})
  for name in executions:
    row = categories[infos[name].category]
    row["ms"] += per_step(wall_us[name])
    row["in_flight_ms"] += per_step(in_flight_us[name])
    row["ops"] += executions[name] / count
    row["gflop"] += infos[name].flops * executions[name] / count / 1e9
  categories[_NO_OP]["ms"] = per_step(idle_us)
  categories[_OUTSIDE]["ms"] = per_step(outside_us)

  def rounded(row: dict) -> dict:
    gflop_per_s = row["gflop"] / row["in_flight_ms"] * 1e3 if row["gflop"] else None
    return {"ms": round(row["ms"], 3), "pct": round(100 * row["ms"] / step_ms, 2),
            "in_flight_ms": round(row["in_flight_ms"], 3), "ops": round(row["ops"], 1),
            "gflop_per_s": None if gflop_per_s is None else round(gflop_per_s, 1)}

  ordered = sorted(categories, key=lambda c: -categories[c]["ms"])
  top_ops = []
  for name in sorted(executions, key=lambda n: -wall_us[n])[:top]:
    info = infos[name]
    in_flight = per_step(in_flight_us[name])
    top_ops.append({
        "op": name, "category": info.category, "ms": round(per_step(wall_us[name]), 3),
        "pct": round(100 * per_step(wall_us[name]) / step_ms, 2),
        "in_flight_ms": round(in_flight, 3), "calls": round(executions[name] / count, 1),
        "gflop_per_s": (round(info.flops * executions[name] / count / 1e9 / in_flight * 1e3, 1)
                        if info.flops and in_flight else None),
        "shapes": info.shapes, "source": info.source})
  busy_ms = step_ms - categories[_NO_OP]["ms"] - categories[_OUTSIDE]["ms"]
  return {
      "step_ms_trace": round(step_ms, 3),
      "step_ms_perf_counter": [round(t * 1e3, 2) for t in wall],
      "step_ms_perf_counter_median": round(statistics.median(wall) * 1e3, 2),
      "coverage_pct": round(100 * busy_ms / step_ms, 2),
      "in_flight_over_wall": round(sum(in_flight_us.values()) / count / 1e3 / step_ms, 3),
      "categories": {c: rounded(categories[c]) for c in ordered},
      "top_ops": top_ops,
      "hlo_module": module.name,
      "impl": impl,
      "profiled_steps": count,
      "jax_version": jax.__version__,
      "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
      "config": {**step_flags, "steps": steps, "warmup": warmup},
  }


def _gflops(value: float | None) -> str:
  return "" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def print_report(record: dict) -> None:
  """The category table and the top ops, for a reader."""
  print(f"{record['hlo_module']} ({record['impl']}), {record['profiled_steps']} profiled steps: "
        f"{record['step_ms_trace']:.1f} ms/step in the trace (perf_counter median "
        f"{record['step_ms_perf_counter_median']:.1f} ms); ops in flight "
        f"{record['coverage_pct']:.1f}% of the step; in-flight time / wall time "
        f"{record['in_flight_over_wall']:.2f}")
  print(f"\n{'category':<46}{'ms/step':>9}{'% step':>8}{'in-flight ms':>14}{'ops':>8}"
        f"{'GFLOP/s':>9}")
  for category, row in record["categories"].items():
    gflops = _gflops(row["gflop_per_s"])
    print(f"{category:<46}{row['ms']:>9.2f}{row['pct']:>7.1f}%{row['in_flight_ms']:>14.2f}"
          f"{row['ops']:>8.0f}{gflops:>9}")
  total = sum(row["ms"] for row in record["categories"].values())
  print(f"{'total':<46}{total:>9.2f}{100 * total / record['step_ms_trace']:>7.1f}%")
  print(f"\n{'op':<30}{'ms/step':>9}{'% step':>8}{'in-flight':>10}{'calls':>6}{'GFLOP/s':>9}"
        f"  {'category':<38}shapes  [source]")
  for op in record["top_ops"]:
    gflops = _gflops(op["gflop_per_s"])
    print(f"{op['op']:<30}{op['ms']:>9.2f}{op['pct']:>7.1f}%{op['in_flight_ms']:>10.2f}"
          f"{op['calls']:>6.0f}{gflops:>9}  {op['category']:<38}{op['shapes']}  "
          f"[{op['source']}]")


def _step_flags() -> dict:
  """The flags of musae_jax.benchmark that shape the step, as make_step's arguments (each of its
  parameters is a flag of the same name)."""
  names = inspect.signature(benchmark.make_step).parameters
  return {name: flags.FLAGS[name].value for name in names}


def _profile() -> None:
  steps, warmup = flags.FLAGS["steps"].value, flags.FLAGS["warmup"].value
  if steps < 1:
    raise errors.UserError("--steps must be at least 1: it is the number of steps profiled.")
  if _TRACE_DIR.value:
    record = profile(pathlib.Path(_TRACE_DIR.value), steps, warmup, _TOP.value, **_step_flags())
  else:
    with tempfile.TemporaryDirectory(prefix="step_profile_") as trace_dir:
      record = profile(pathlib.Path(trace_dir), steps, warmup, _TOP.value, **_step_flags())
  print_report(record)
  print(json.dumps(record))


def main(argv):
  cli.run_tool(argv, _profile, verbosity=logging.WARNING)


if __name__ == "__main__":
  app.run(main)
