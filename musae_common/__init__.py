"""The bottom layer that data_pipeline and musae_jax both import, and that imports neither: the
errors a user can fix (errors.py), the common start of every command (cli.py) and the host-memory
setting it applies (host_memory.py)."""
