"""Command-line apps: the only layer that sees Hydra config objects (``cli``, ``config_checks``)."""
