"""``tracker-download``: Meta's SAM 2 / 2.1 checkpoints by model name, SHA-256 checked, into the cache
that ``model=NAME`` reads when ``model.checkpoint`` is not given.

    tracker-download sam2.1_hiera_t            # one model
    tracker-download --all                     # the four SAM 2.1 models
    tracker-download --list                    # names, files and what is cached
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..weights_cache import BASE_URL, DEADLINE_S, WEIGHTS, DownloadError, bar, cached, download, home, lookup
from . import OneLineParser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e7:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


_ENVIRONMENT = """\
where the SHA-256 comes from, first found: --sha256; the sums file; SHA256SUMS beside a mirror's files
(--base-url); Hugging Face's file list (the LFS object id). Offline, with a mirror: put SHA256SUMS there.

environment:
  TRACKER_HOME         the cache folder's parent (default ~/.cache/tracker)
  TRACKER_WEIGHTS_URL  a mirror, as --base-url
  TRACKER_SHA256_FILE  a sums file of "<sha256>  <file> [<bytes>]" lines (default: the package's)
  TRACKER_HF_API       Hugging Face's API (default https://huggingface.co/api/models)"""


def _parser() -> argparse.ArgumentParser:
    ap = OneLineParser(
        epilog=_ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        prog="tracker-download",
        description="Download SAM 2 / 2.1 checkpoints (SHA-256 checked, resumable) into the tracker cache "
        f"(TRACKER_HOME, now {home()}).",
    )
    ap.add_argument("models", nargs="*", help=f"model names: {', '.join(WEIGHTS)}")
    ap.add_argument("--all", action="store_true", help="every SAM 2.1 model")
    ap.add_argument("--list", action="store_true", help="list the models and what is cached, download nothing")
    ap.add_argument("--folder", type=Path, help="download here instead of the cache")
    ap.add_argument("--base-url", help=f"where the files are (default {BASE_URL}; env TRACKER_WEIGHTS_URL)")
    ap.add_argument(
        "--deadline",
        type=_seconds,
        default=DEADLINE_S,
        metavar="SECONDS",
        help=f"stop a download after this long (default {DEADLINE_S:.0f}; the same command resumes it)",
    )
    ap.add_argument("--sha256", metavar="HEX", help="the file's SHA-256, when you have it (one model only)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.list:
        for w in WEIGHTS.values():
            have = cached(w.model)
            print(f"{w.model:16} {w.file:28} {have if have else '-'}")
        return
    names = list(args.models) + ([m for m in WEIGHTS if m.startswith("sam2.1_")] if args.all else [])
    if not names:
        print("tracker-download: error: name a model (e.g. tracker-download sam2.1_hiera_t) or --all", file=sys.stderr)
        sys.exit(2)
    if args.sha256 is not None and len(names) != 1:
        print("tracker-download: error: --sha256 is one file's sum: name one model with it", file=sys.stderr)
        sys.exit(2)
    try:
        found = [lookup(n) for n in names]
    except DownloadError as e:
        print(f"tracker-download: error: {e}", file=sys.stderr)
        sys.exit(2)
    for w in found:
        try:
            path = download(
                w.model,
                folder=args.folder,
                base_url=args.base_url,
                progress=None if args.quiet else bar(w.file),
                deadline_s=args.deadline,
                sha256=args.sha256,
            )
        except DownloadError as e:
            print(f"tracker-download: error: {e}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            print(f"tracker-download: interrupted: run the same command again to resume {w.file}", file=sys.stderr)
            sys.exit(130)
        print(f"{w.model}: {path} (SHA-256 checked)")


if __name__ == "__main__":
    main()
