r"""Latency of the latent explorer's decode: one window per request, p50/p95.

  python benchmarks/explore_latency.py --workdir=runs/demo
  python benchmarks/explore_latency.py --random_model --hidden=256 --layers=3 --latent=128

Serves the explorer (musae_jax.tools.explore) with uvicorn on 127.0.0.1 in this process and times
POST /api/decode of one code (the puck's request): sequentially, then from --clients concurrent
clients (keep-alive connections, one thread each). Also times the same decode called directly
(no HTTP). --random_model builds a 2-bar Gaussian-prior model of the given size with random
parameters instead of loading a run (decode time does not depend on the parameters' values).
Times are round trips on the same machine: the server's work plus local HTTP.
"""

import concurrent.futures
import http.client
import json
import os
import socket
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from musae_jax.tools import explore  # pylint: disable=wrong-import-position
from musae_jax.tools import explorer_operations  # pylint: disable=wrong-import-position
from musae_jax.tools import runs  # pylint: disable=wrong-import-position

flags.DEFINE_string("workdir", None, "A training run to load (else --random_model).")
flags.DEFINE_boolean("random_model", False, "A random 2-bar model of the sizes below.")
flags.DEFINE_integer("hidden", 256, "--random_model: LSTM units.")
flags.DEFINE_integer("layers", 3, "--random_model: stacked LSTM layers (encoder and decoders).")
flags.DEFINE_integer("latent", 128, "--random_model: latent size.")
flags.DEFINE_integer("requests", 200, "Sequential requests (after 10 warm-up ones).")
flags.DEFINE_integer("clients", 8, "Concurrent clients.")
flags.DEFINE_integer("per_client", 50, "Requests per concurrent client.")
flags.DEFINE_string("json_out", None, "Also write the results as JSON here.")


def random_run(hidden: int, layers: int, latent: int) -> runs.Run:
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  from musae_jax.model import MusAE  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.data.bars = 2
  config.model.hidden_size = hidden
  config.model.latent_size = latent
  config.model.encoder_layers = config.model.decoder_layers = layers
  config.model.prior = "gaussian"
  graphdef, params = nnx.split(MusAE(config.model, 0, rngs=nnx.Rngs(params=0),
                                     num_bars=config.data.bars), nnx.Param)
  return runs.Run(f"random_h{hidden}_l{layers}_z{latent}", config, [], 0, graphdef, params)


def percentiles(times: list[float]) -> dict:
  ms = np.asarray(times) * 1e3
  return {"n": int(ms.size), "p50_ms": round(float(np.percentile(ms, 50)), 2),
          "p95_ms": round(float(np.percentile(ms, 95)), 2),
          "mean_ms": round(float(ms.mean()), 2)}


def post_times(port: int, code: list[float], count: int) -> list[float]:
  body = json.dumps({"code": code})
  connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
  times = []
  for _ in range(count):
    start = time.perf_counter()
    connection.request("POST", "/api/decode", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    times.append(time.perf_counter() - start)
    if response.status != 200:
      raise RuntimeError(f"decode answered {response.status}")
  connection.close()
  return times


def main(argv):
  del argv
  import uvicorn  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  if f.random_model:
    run = random_run(f.hidden, f.layers, f.latent)
    model = (f"random 2-bar model, hidden {f.hidden}, {f.layers}-layer stacks, latent "
             f"{f.latent}")
  elif f.workdir:
    run = runs.load_run(f.workdir)
    model = (f"{f.workdir} (step {run.step}; hidden {run.config.model.hidden_size}, "
             f"{run.config.model.encoder_layers}/{run.config.model.decoder_layers} layers, latent "
             f"{run.latent_size}, {run.bars} bars)")
  else:
    raise app.UsageError("give --workdir=RUN or --random_model")
  with tempfile.TemporaryDirectory() as uploads:
    explorer = explorer_operations.Explorer(run, None, uploads)
    explorer.warm_up()  # As the server does before its first visitor.
    code = np.random.default_rng(0).normal(size=run.latent_size).astype(np.float32)
    direct = []
    for i in range(f.requests + 10):
      start = time.perf_counter()
      explorer.decode(code)
      if i >= 10:
        direct.append(time.perf_counter() - start)
    with socket.socket() as s:
      s.bind(("127.0.0.1", 0))
      port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(explore.create_app(explorer), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
      time.sleep(0.05)
    code_list = code.tolist()
    sequential = post_times(port, code_list, f.requests + 10)[10:]
    with concurrent.futures.ThreadPoolExecutor(f.clients) as pool:
      results = list(pool.map(lambda _: post_times(port, code_list, f.per_client),
                              range(f.clients)))
    concurrent_times = [t for result in results for t in result]
    server.should_exit = True
    thread.join(timeout=30)
  report = {"model": model, "cpus": os.cpu_count(),
            "direct_decode": percentiles(direct),
            "http_sequential": percentiles(sequential),
            f"http_{f.clients}_clients": percentiles(concurrent_times)}
  print(json.dumps(report, indent=1))
  if f.json_out:
    with open(f.json_out, "w", encoding="utf-8") as out:
      json.dump(report, out, indent=1)


if __name__ == "__main__":
  app.run(main)
