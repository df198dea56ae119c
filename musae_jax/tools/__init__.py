"""The tools that use a trained run (nothing in training imports them).

  runs           load a run's newest checkpoint; encode, decode, draw from its prior
  input_windows  the windows a tool reads: a song's, a dataset split's, a MIDI folder's
  generate       reconstruct, sample, interpolate, transfer, move along attributes, restyle songs
  evaluate       reconstruction, music metrics, interpolation curves, genre probe, reports
  attributes     attribute vectors in the latent space (mean of high minus low windows)
  music_metrics  note accuracy, onset F1 and the music descriptors the tools share
  plots          pianorolls, curves and the figures of the reports
  reports        JSON-safe values for the reports
  reproduce      the reproduction suite: data, training, evaluation, the table of RESULTS.md
  explore        the latent explorer: a local web app over a trained run, its HTTP server
                 (explorer_operations: what it does, without HTTP; request_batcher: one model
                 call for concurrent requests)
"""
