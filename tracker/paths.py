"""Where the package's own files are: the Hydra configs, in a checkout (the repo's top-level configs/)
or in an installed wheel (carried as tracker/configs)."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The folder of config.yaml and its groups (model/, source/, ...)."""
    for d in (_HERE / "configs", _HERE.parent / "configs"):
        if (d / "config.yaml").is_file():
            return d
    raise FileNotFoundError(f"tracker's configs are missing (looked in {_HERE / 'configs'}): reinstall sam2-tracker")
