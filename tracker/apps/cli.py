"""The ``tracker`` command: a Hydra app over ``configs/config.yaml``. The only module that sees Hydra
config objects; everything below it takes plain values.

    tracker source.path=clip.mp4 prompts.path=prompts.yaml
    tracker source.path=clip.mp4 prompts.box=[10,20,200,220] prompts.frame=0
    tracker experiment=demo
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from ..paths import config_dir
from ..run import OutputSpec, RunSpec, checks
from ..run import run as run_spine
from ..run.errors import one_line
from ..run.model import build
from ..run.outputs import logged_to, save_texts
from ..run.spec import model_spec
from ..run.transaction import OutputError, OutputTransaction, check_not_in_outputs, check_output_dir, missing_dirs
from ..threads import apply_threads, resolve_threads, usable_cores
from .help import help_text

log = logging.getLogger("tracker")

CONFIGS = str(config_dir())

# Folders that did not exist before this process's run(s), by output folder: a failed run removes those
# it leaves empty. Filled when Hydra resolves hydra.run.dir, before Hydra creates it.
_CREATED: dict[str, list[Path]] = {}


def _run_dir(out: str | None, default: str) -> str:
    """hydra.run.dir: output_dir when given, else Hydra's dated folder. A path that cannot be a folder
    becomes "." here (Hydra would fail on it with a traceback) and is refused by run() with one line."""
    path = out or default
    try:
        check_output_dir(path)
    except OutputError:
        return "."
    _CREATED.setdefault(os.path.abspath(path), missing_dirs(path))
    return path


# Registered here, in the CLI layer, before any config is composed.
if not OmegaConf.has_resolver("tracker.run_dir"):
    OmegaConf.register_new_resolver("tracker.run_dir", _run_dir)


_USER_PATHS = (
    "source.path",
    "prompts.path",
    "model.checkpoint",
    "output_dir",
    "dataset.root",
    "pred",
    "gt",
    "train.data_root",
    "train.val_root",
)


def _absolute_paths(cfg: DictConfig) -> None:
    """Relative paths the user gave are relative to the folder the command started in, also under
    ``hydra.job.chdir=true`` (which moves the process into the run folder first)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    cwd = Path(HydraConfig.get().runtime.cwd)
    for key in _USER_PATHS:
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, str) and value and "://" not in value and value != "-" and not Path(value).is_absolute():
            OmegaConf.update(cfg, key, str(cwd / value))
    plugins = OmegaConf.select(cfg, "plugins", default=None)
    if isinstance(plugins, Sequence) and not isinstance(plugins, str):  # files, not module names
        files = [
            str(cwd / p) if isinstance(p, str) and p.endswith(".py") and not Path(p).is_absolute() else p
            for p in plugins
        ]
        OmegaConf.update(cfg, "plugins", files)


def _output_dir(cfg: DictConfig) -> tuple[Path, list[Path]]:
    """The run's output folder, checked, and the folders made for it (removed again if it fails). In a
    sweep (``-m``), ``output_dir=X`` gives each job its own ``X/<job number>``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if cfg.output_dir:
        out = Path(cfg.output_dir)
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            out = out / str(HydraConfig.get().job.num)
    else:
        out = Path(HydraConfig.get().runtime.output_dir)
    check_output_dir(out)
    return out, _CREATED.setdefault(os.path.abspath(out), missing_dirs(out))


def _remove_created() -> None:
    """After a failure: remove the folders made for this job that are still empty (Hydra makes the
    output folder before the job starts; a check may fail before the transaction does it)."""
    for dirs in _CREATED.values():
        for d in dirs:
            try:
                d.rmdir()
            except OSError:
                break
    _CREATED.clear()


def _concurrent_jobs() -> int:
    """Jobs running at once in this sweep: the joblib launcher's n_jobs, else 1."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return 1
    hc = HydraConfig.get()
    launcher = hc.launcher
    if hc.mode != RunMode.MULTIRUN or "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n = launcher.get("n_jobs") or 1
    return usable_cores() if n < 0 else int(n)


def config_texts(cfg: DictConfig) -> dict[str, str]:
    """``.hydra/config.yaml`` and ``overrides.yaml``, as Hydra writes them (into the staged set)."""
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return {"config.yaml": OmegaConf.to_yaml(cfg), "overrides.yaml": OmegaConf.to_yaml(OmegaConf.create(overrides))}


def run_spec(cfg: DictConfig) -> RunSpec:
    """The composed config as a checked :class:`RunSpec`, with what only Hydra knows: the output folder
    (a sweep job's own), the folders made for it, ``.hydra/``'s texts, the jobs running at once."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    spec = RunSpec.from_config(plain, jobs=_concurrent_jobs())  # type: ignore[arg-type]
    out, created = _output_dir(cfg)
    return replace(spec, output=OutputSpec(out, tuple(created), config_texts(cfg)))


def run(cfg: DictConfig, model: Any = None, extra_sinks: Sequence[Any] = ()) -> dict[str, Any]:
    """``tracker``'s job: the config as a RunSpec, run by the spine; returns run.json's content."""
    return run_spine(run_spec(cfg), model=model, extra_sinks=extra_sinks)


# ---- entry points: one error line, exit codes, signals, --help ----------------------------------------


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised in the main thread so every cleanup path runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_debug = False
_failed = False
_prog = "tracker"
_asked: int | None = None  # the signal that asked this process to stop


def _stopping(signum: int, frame: Any) -> None:
    global _asked
    # Kept as well as raised: Python only prints an exception raised inside a finaliser, so a signal
    # landing there would be lost (the studio checks this, see stop_asked).
    _asked = signum
    # A second signal during the cleanup is ignored: raising again would cut the cleanup short.
    for s in _SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


def stop_asked() -> int | None:
    """The signal that asked this process to stop (SIGINT, SIGTERM or SIGHUP), or None."""
    return _asked


def _what_was_left(e: BaseException, prog: str) -> str:
    """What the stop left, as the run's transaction recorded it on the exception."""
    kept = getattr(e, "resume_kept", None)
    if kept:
        return f"{kept} is kept: resume=true continues this run"
    if getattr(e, "live_kept", None):
        return f"the outputs in {e.live_kept} are kept, each valid up to the last frame tracked"  # type: ignore[attr-defined]
    if getattr(e, "run_removed", False):
        return "the unfinished run's outputs are removed; the output folder is as it was"
    return "nothing was running" if prog == "tracker-studio" else "no outputs were written"


def entry(app: Callable[[], Any], prog: str) -> None:
    """Run a Hydra app: any failure is one ``PROG: error:`` line and exit 2; signals exit 128+N after
    the same cleanup; ``debug=true`` shows the traceback."""
    global _debug, _prog, _failed, _asked
    _prog, _failed, _asked = prog, False, None
    _CREATED.clear()
    if prog == "tracker" and app is _app and any(a in ("--help", "-h") for a in sys.argv[1:]):
        print(help_text())
        return
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra's errors reach us instead of its own report
    # stderr is for the error line: Python warnings go to the log (stdout and run.log), and the one about
    # random weights is logged by _build_model already.
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message="model.checkpoint is null", category=UserWarning)
    _debug = any(a.lower() in ("debug=true", "debug=1") for a in sys.argv[1:])
    for s in _SIGNALS:
        signal.signal(s, _stopping)
    try:
        app()
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        print(f"{prog}: interrupted ({signal.Signals(signum).name}); {_what_was_left(e, prog)}", file=sys.stderr)
        sys.exit(128 + signum)
    except Exception as e:
        if _debug:
            traceback.print_exc()
        line = one_line(e)
        if prog == "tracker" and type(e).__module__.startswith("hydra"):
            from .help import unknown_key_line

            line = unknown_key_line(line) or line
        print(f"{prog}: error: {line}", file=sys.stderr)
        sys.exit(2)
    if _failed:
        sys.exit(2)


def job(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], None]:
    """Wrap a Hydra task: its error is reported here, one line per failed job (Hydra would add lines of
    its own), and ``_entry`` exits 2 once every job of a sweep has run."""

    def job(cfg: DictConfig) -> None:
        global _debug, _failed
        _debug = _debug or cfg.get("debug") is True
        try:
            _absolute_paths(cfg)
            task(cfg)
        except Exception as e:
            _remove_created()
            _failed = True
            if _debug:
                traceback.print_exc()
            print(f"{_prog}: error: {one_line(e)}", file=sys.stderr, flush=True)
        except BaseException:
            _remove_created()
            raise
        _CREATED.clear()

    job.__name__ = task.__name__
    job.__doc__ = task.__doc__
    return job


@hydra.main(config_path=CONFIGS, config_name="config", version_base="1.3")
@job
def _app(cfg: DictConfig) -> None:
    run(cfg)


@hydra.main(config_path=CONFIGS, config_name="eval", version_base="1.3")
@job
def _eval_app(cfg: DictConfig) -> None:
    """``tracker-eval pred=DIR gt=DIR``: J&F of a prediction folder against ground truth."""
    from ..experiments.datasets import gt_sequences
    from ..experiments.evaluate import evaluate, format_table, results_dict, write_results

    plain = OmegaConf.to_container(cfg, resolve=True)
    checks.choice(plain, "layout", ("davis", "sav"))  # type: ignore[arg-type]
    if not cfg.pred or not cfg.gt:
        raise ValueError("pass pred=PREDICTIONS_DIR gt=GROUND_TRUTH_DIR")
    out, created = _output_dir(cfg)
    planned = ["results.json", "results.csv", "run.log", ".hydra"]
    check_not_in_outputs(out, planned, [("pred", cfg.pred), ("gt", cfg.gt)])
    results = results_dict(evaluate(Path(cfg.pred), gt_sequences(cfg.gt, cfg.layout)))
    with OutputTransaction(out, created) as tx, logged_to(tx.path("run.log")):
        save_texts(tx.staging, config_texts(cfg))
        write_results(tx.staging, results)
        tx.commit()
    print(format_table(results))
    log.info("wrote %s and %s", out / "results.csv", out / "results.json")


@hydra.main(config_path=CONFIGS, config_name="train", version_base="1.3")
@job
def _train_app(cfg: DictConfig) -> None:
    """``tracker-train``: train / fine-tune SAM 2 on a DAVIS-layout dataset (tracker/experiments/train.py). Its output
    folder is a resumable training state (last.pt), not a transaction: each file is written atomically."""
    from ..experiments.train import TrainSettings, train

    plain = OmegaConf.to_container(cfg, resolve=True)
    checks.model(plain)  # type: ignore[arg-type]
    t = cfg.train
    if not t.data_root:
        raise ValueError("train.data_root is not set: pass train.data_root=DATASET (DAVIS layout)")
    out, _ = _output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    try:
        settings = TrainSettings(out_dir=str(out), seed=cfg.seed, **OmegaConf.to_container(t, resolve=True))
    except TypeError as e:
        raise ValueError(f"train: {e}: see configs/train/default.yaml for the keys") from None
    apply_threads(resolve_threads(checks.threads(plain)))  # type: ignore[arg-type]
    model = build(model_spec(plain, weights=False), checkpoint=False)  # type: ignore[arg-type]
    history = train(model, settings, checkpoint_from=cfg.model.checkpoint, progress=cfg.progress)
    last = [h for h in history if "loss" in h][-1]
    log.info("done: step %d, loss %.4f -> %s", last["step"], last["loss"], out)


def main() -> None:
    entry(_app, "tracker")


def train_main() -> None:
    entry(_train_app, "tracker")


def eval_main() -> None:
    entry(_eval_app, "tracker")


def report_main() -> None:
    from ..experiments.report import main as report

    entry(report, "tracker-report")


if __name__ == "__main__":
    main()
