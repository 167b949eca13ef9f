"""``dataset=davis|sav``: track every sequence of a VOS dataset (semi-supervised protocol), write the
predictions and evaluate them, as one output transaction."""

from __future__ import annotations

from typing import Any

from ..io.prompts import PromptError
from ..io.sinks import write_json_atomic
from .model import build, checkpoint_file
from .outputs import RECORDS, logged_to, output_folder, run_threads, save_config
from .record import base_record, finished_record
from .spec import RunSpec
from .transaction import OutputTransaction, check_not_in_outputs


def run_dataset(spec: RunSpec, started: float, model: Any = None) -> dict[str, Any]:
    from ..experiments.datasets import load_sequences
    from ..experiments.vos import run_dataset as track_dataset

    d = spec.dataset
    assert d is not None
    if not spec.source.frames.everything:
        raise PromptError("source.start/stop/stride/max_frames do not apply to dataset runs (all frames are scored)")
    out = output_folder(spec)
    names = ["predictions", "results.json", "results.csv", *RECORDS, "videos"]
    check_not_in_outputs(out, names, [("dataset.root", d.root), ("model.checkpoint", checkpoint_file(spec.model))])
    threads = run_threads(spec)
    seqs = load_sequences(d.layout, d.root, d.split, d.resolution, d.shard, d.num_shards)
    with OutputTransaction(out, list(spec.output.created)) as tx, logged_to(tx.path("run.log")):
        save_config(spec, tx.staging)
        model = model if model is not None else build(spec.model)
        results, timings = track_dataset(
            model,
            seqs,
            tx.staging,
            d.layout,
            prompt=d.prompt,
            annotated_video=d.annotated_video,
            reverse_chunk=spec.reverse_chunk,
            prefetch=spec.prefetch,
            progress=spec.progress,
            memory=spec.memory.policy,
        )
        sections = {"sequences": [s.name for s in seqs], "results": results["dataset"]}
        record = finished_record(base_record(spec, model, "dataset", threads), timings, started, **sections)
        write_json_atomic(tx.path("run.json"), record)
        tx.commit()
    return record
