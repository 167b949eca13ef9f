"""``tracker --help``: the groups and their options, the keys worth knowing, examples."""

from __future__ import annotations

import difflib
import re
from typing import Any

from omegaconf import OmegaConf

from ..api import compose_config
from ..paths import config_dir

_EXAMPLES = """\
  tracker source.path=clip.mp4 prompts.path=prompts.yaml model=sam2.1_hiera_l   (after tracker-download sam2.1_hiera_l)
  tracker source.path=clip.mp4 prompts.box=[100,80,260,240] prompts.frame=0
  tracker experiment=demo
  tracker dataset=davis dataset.root=data/davis model=toy
  tracker source.path=clip.mp4 prompts=auto discover.every=4   (find the objects; new ones join every 4 frames)
  tracker source.path=clip.mp4 prompts=detections prompts.path=gt.txt sink.mots=true   (MOT boxes -> MOTS masks)
  tracker -m source.path=a.mp4,b.mp4 prompts.path=p.yaml output_dir=runs/ab   (runs/ab/0, runs/ab/1)
  tracker source.path=rtsp://camera/stream prompts.path=p.yaml live.realtime=true   (online, until it ends)
  tracker source.path=long.mp4 prompts.path=p.yaml output_dir=runs/long resume=true   (after a kill)
  tracker-studio source.path=clip.mp4   (a page: click on objects, see masks, track, correct)"""


def help_text() -> str:
    """A short --help: the groups and their options, the keys worth knowing, examples. (Hydra's own
    lists SAM 2's whole architecture; ``--cfg job`` still prints everything, ``--hydra-help`` Hydra's.)"""
    root = config_dir()
    groups = [d.name for d in sorted(root.iterdir()) if d.is_dir() and d.name not in ("hydra", "train")]
    lines = ["tracker: track objects through a video with SAM 2. Overrides are KEY=VALUE (Hydra).", "", _EXAMPLES]
    lines += ["", "Config groups (GROUP=OPTION):"]
    for g in groups:
        lines.append(f"  {g}: {', '.join(sorted(p.stem for p in (root / g).glob('*.yaml')))}")
    cfg = OmegaConf.to_container(compose_config(), resolve=False)
    lines += ["", "Keys (defaults):"]

    def leaves(node: Any, prefix: str) -> None:
        for k, v in node.items():
            if k == "arch":
                continue
            if k == "generator" and not prefix:  # a dozen thresholds: named, not listed
                lines.append("  generator.*: the automatic mask generator's grid and thresholds (run_common.yaml)")
                continue
            if isinstance(v, dict):
                leaves(v, f"{prefix}{k}.")
            else:
                shown = "null" if v is None else str(v).lower() if isinstance(v, bool) else v
                lines.append(f"  {prefix}{k}={shown}")

    leaves(cfg, "")
    lines += ["", "tracker --cfg job prints the whole composed config; --hydra-help lists Hydra's own options."]
    return "\n".join(lines)


def setting_names() -> list[str]:
    """Every key of the composed config (dotted, SAM 2's architecture left out) and every group name."""
    names = [d.name for d in sorted(config_dir().iterdir()) if d.is_dir()]

    def walk(node: Any, prefix: str) -> None:
        for k, v in node.items():
            if k != "arch" and k != "hydra":
                names.append(prefix + str(k))
                if isinstance(v, dict):
                    walk(v, f"{prefix}{k}.")

    walk(OmegaConf.to_container(compose_config(), resolve=False), "")
    return names


_UNKNOWN = re.compile(
    r"Could not override '([^']+)'\. To append to your config use \+[^=]*=(.*) \(Key .* is not in struct\)"
)


def unknown_key_line(message: str) -> str | None:
    """Hydra's 'Could not override KEY ... use +KEY' (a typo, nearly always: '+' adds a key nothing reads)
    said as what it is, with the nearest setting: ``prompt.box`` -> ``prompts.box``."""
    m = _UNKNOWN.search(message)
    if m is None:
        return None
    key, value = m.groups()
    names = setting_names()
    # A value that is one of a group's options names the group: modle=toy is model=toy, not mode=toy.
    owners = [d.name for d in config_dir().iterdir() if d.is_dir() and (d / f"{value}.yaml").is_file()]
    best = difflib.get_close_matches(key, owners, n=1, cutoff=0.5) or difflib.get_close_matches(key, names, 1, 0.6)
    if not best and "." in key:  # the group mistyped, the key right: prompt.box
        head, rest = key.split(".", 1)
        heads = difflib.get_close_matches(head, [n for n in names if "." not in n], n=1, cutoff=0.6)
        best = [f"{heads[0]}.{rest}"] if heads and f"{heads[0]}.{rest}" in names else []
    if best:
        return f"{key!r} is not a setting: did you mean {best[0]}={value}? (tracker --help lists the settings)"
    return f"{key!r} is not a setting: tracker --help lists them"
