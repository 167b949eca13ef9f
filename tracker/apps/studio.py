"""``tracker-studio``: the studio's Hydra app. It checks the config as ``tracker`` does, loads the model
once, serves the page (tracker/studio/) and prints one line with its URL and token.

    tracker-studio source.path=clip.mp4 output_dir=runs/clip model=toy
    studio: http://127.0.0.1:PORT/?token=TOKEN
"""

from __future__ import annotations

import logging
import shlex
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import yaml
from omegaconf import DictConfig, OmegaConf

from ..experiments.demo import write_demo_clip
from ..paths import config_dir
from ..run import checks
from ..run import run as run_spine
from ..run.checks import ConfigError
from ..run.model import build, toy_meets_real_video
from ..run.outputs import check_inputs_apart, output_folder, planned, run_threads, source_options
from ..run.prepare import prepare
from ..run.prompts import PromptInput, read_prompts
from . import cli

log = logging.getLogger("tracker")


def _check_studio(plain: dict[str, Any]) -> None:
    checks.video_run(plain)
    checks.integer(plain, "studio.port", 0, 65535, example=0)
    checks.integer(plain, "studio.feature_cache", 1, 1024, example=8)
    checks.integer(plain, "studio.frame_cache", 1, 100000, example=64)
    checks.integer(plain, "studio.max_body_kb", 1, 1 << 20, example=256)
    host = plain["studio"]["host"]
    if not isinstance(host, str) or not host:
        raise ConfigError(f"studio.host={host!r} is not a host: give an address such as 127.0.0.1")
    if plain.get("dataset"):
        raise ConfigError("tracker-studio works on one video: drop dataset=..., pass source.path=VIDEO")
    if plain.get("resume") or plain.get("mode") == "online":
        raise ConfigError("tracker-studio runs whole Tracks of a file: drop resume=true / mode=online")
    from ..io.live import stream_kind
    from ..io.source import SOURCES

    path = plain["source"]["path"]
    if SOURCES[plain["source"]["kind"]].device or (path and stream_kind(path)):
        raise ConfigError(
            f"tracker-studio needs a video file to scrub through, not a live source ({path or 'camera'}): "
            "record it to a file first"
        )


# Overrides a Track sets itself (its source, prompts and folder) or that only the page uses.
_TRACK_SETS = ("prompts", "output_dir", "studio", "progress", "hydra", "demo")


def _command(cfg: DictConfig, video: str, out: Path, prompts_file: Path, overrides: Sequence[str]) -> str:
    """The ``tracker`` command that runs what a Track runs: every override the studio was started with
    (``overrides``, as Hydra read them), but for those a Track sets itself."""
    args = [f"source.path={video}", f"prompts.path={prompts_file}", f"output_dir={out}"]
    if overrides:
        keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
        kept = [o for o, k in zip(overrides, keys) if k != "source.path" and k.split(".")[0] not in _TRACK_SETS]
        args = [*kept, *args]
    else:  # built without Hydra's command line (tests, Python): what decides the masks
        if cfg.source.kind != "pyav":
            args.insert(0, f"source={cfg.source.kind}")
        args.append(f"model={cfg.model.name}")
        if cfg.model.checkpoint and not str(cfg.model.checkpoint).startswith("pkg://"):
            args.append(f"model.checkpoint={cfg.model.checkpoint}")
    return "tracker " + " ".join(shlex.quote(a) for a in args)


def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it a small JSON answer (a preview) waits behind its
        # headers for the client's delayed ACK, 40 ms on Linux.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        why = e.strerror or str(e)
        raise ConfigError(
            f"studio.host={host} studio.port={port} cannot be served ({why}): "
            "pick another host or port (studio.port=0: any free one)"
        ) from None
    return sock


def _studio_video(spec: Any, out: Path) -> str:
    """The video the studio opens: source.path, or experiment=demo's clip written into ``out``."""
    if spec.source.path:
        return str(spec.source.path)
    if spec.demo is None:
        raise ConfigError("source.path is not set: pass source.path=VIDEO (or experiment=demo)")
    d = spec.demo
    out.mkdir(parents=True, exist_ok=True)
    return str(write_demo_clip(out / "studio_demo.mp4", d.frames, d.width, d.height, d.seed))


def _studio_prompts(spec: Any) -> PromptInput | None:
    """The prompts the page opens with (None: none yet, or prompts=auto's, found once the model is built)."""
    p = spec.prompts
    if p.kind == "auto":
        return None
    if p.path or p.box is not None or p.points is not None:
        return read_prompts(spec)
    if not spec.source.path and spec.demo is not None:
        # experiment=demo opens with the demo's objects, as the tracker command tracks them
        from ..experiments.demo import demo_prompts

        d = spec.demo
        return PromptInput(demo_prompts(d.frames, d.width, d.height, d.seed))
    return None


def _log_start(path: str, info: Any, model_name: str, out: Path) -> None:
    log.info(
        "studio: %s (%dx%d, %d frames), model %s, outputs in %s",
        path,
        info.width,
        info.height,
        info.num_frames,
        model_name,
        out,
    )


def build_studio(cfg: DictConfig):
    """Check the config, the video and the prompts (before any frame is decoded), load the model: the
    :class:`tracker.studio.session.Studio` that ``serve`` serves."""
    from ..discovery import GeneratorSettings, MaskGenerator
    from ..io.source import check_source_path, open_source
    from ..studio.frames import FrameStore
    from ..studio.session import PROMPTS_FILE, Finder, Studio, StudioLimits

    _check_studio(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    spec = cli.run_spec(cfg)
    out = output_folder(spec)  # the CLI's and the API's rule for OUT
    path = _studio_video(spec, out)
    check_source_path(path, spec.source.kind)
    given = _studio_prompts(spec)
    check_inputs_apart(spec, planned(spec, PROMPTS_FILE), given, path)
    threads = run_threads(spec)
    video = open_source(spec.source.kind, path, **source_options(spec, threads))
    ready = prepare(spec, given or PromptInput(), threads, video, none_yet=given is None)
    source, plan = ready.source, ready.plan  # the page shows the frames a Track reads
    model = build(spec.model)
    file_prompts = yaml.safe_load((config_dir() / "prompts" / "file.yaml").read_text())  # prompts=file's keys

    def run_track(prompts_file: Path, extra_sinks) -> dict[str, Any]:
        """A Track: the run ``tracker`` makes of the saved prompts file, into the studio's output folder."""
        job = spec.with_config(
            {
                "source.path": str(path),
                "prompts": {**file_prompts, "path": str(prompts_file)},
                "progress": False,
                "demo": None,
            }
        )
        return run_spine(job, model=model, extra_sinks=extra_sinks)

    s = cfg.studio
    _log_start(path, source.info, spec.model.name, out)
    studio = Studio(
        model,
        FrameStore(source, jpeg_cache=s.frame_cache),
        out,
        run_track,
        spec=plan.spec,
        limits=StudioLimits(max_object_id=spec.max_id, feature_cache=max(1, int(s.feature_cache))),
        command=lambda f: _command(cfg, str(path), out, f, _overrides()),
        finder=Finder(
            MaskGenerator(model, GeneratorSettings(**spec.discovery.generator)),
            new_iou=spec.discovery.new_iou,
            max_covered=spec.discovery.max_covered,
        ),
    )
    studio.warning = toy_meets_real_video(model, path)
    if studio.warning is not None:
        log.warning(studio.warning)
    if spec.prompts.kind == "auto":  # prompts=auto: the objects of prompts.frames are found before the page opens
        for f in plan.found_on:
            studio.find_objects(f)
    return studio


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        async def on_tick(self, counter: int) -> bool:
            # A signal before uvicorn listens (start-up is where a finaliser is likely to be running) may
            # have had its KeyboardInterrupt swallowed: the stop it asked for still happens.
            return cli.stop_asked() is not None or await super().on_tick(counter)

    return Server


def serve(cfg: DictConfig) -> None:
    """Check everything, load the model, serve until SIGINT / SIGTERM."""
    import uvicorn

    from ..studio.server import create_app, new_token

    s = cfg.studio
    _check_studio(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    sock = _bind(s.host, s.port)  # before the model loads: a taken port fails at once
    try:
        studio = build_studio(cfg)
    except BaseException:
        sock.close()
        raise
    try:
        token = new_token()
        app = create_app(studio, token, max_body=s.max_body_kb * 1024)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"studio: http://{shown}:{port}/?token={token}", flush=True)
        try:
            config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off")
            _server_class()(config).run(sockets=[sock])
        finally:
            sock.close()
        if (signum := cli.stop_asked()) is not None:
            raise cli.Interrupted(signum)
    except KeyboardInterrupt as e:
        if any(j.state == "running" for j in studio.jobs.values()):
            e.run_removed = True  # type: ignore[attr-defined]  # the Track is abandoned, nothing committed
        raise
    finally:
        studio.close()


@hydra.main(config_path=cli.CONFIGS, config_name="studio", version_base="1.3")
@cli.job
def _studio_app(cfg: DictConfig) -> None:
    serve(cfg)


def main() -> None:
    cli.entry(_studio_app, "tracker-studio")


if __name__ == "__main__":
    main()
