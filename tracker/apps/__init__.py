"""The doors that see Hydra: ``cli`` (tracker, tracker-eval, tracker-train, tracker-report), ``studio``
(tracker-studio), ``help``, and the small commands ``download`` and ``frame``. Each composes its config
and hands a typed spec to the layers below."""

from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """argparse for the small commands: a bad argument is one line and exit code 2, as every error of the
    tool (argparse would print the usage first)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")
