"""`python -m pipeline run`: the profile's stages in order, each reading the kept/ of the last
stage before it that feeds the next stage, then OUT/corpus/ (pipeline.export: the last text
stage's kept/, the shards and the dataset card) and report.html. Finished stages are skipped
(their manifests match), so a re-run after a crash resumes at the first stage that did not finish."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.config import Profile
from pipeline.errors import UserError
from pipeline.export import export_corpus
from pipeline.stage import run_stage, stage_config


def run_pipeline(profile: Profile, stages: list, input_spec: str, output: str, *, master=None,
                 overwrite: bool = False) -> list[dict]:
    from pipeline.report import write_report
    from pipeline.spark import get_spark

    out = Path(output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output {out}: {exc.strerror}") from None
    spark = get_spark(profile.spark, master)
    stage_dirs: dict[str, Path] = {}
    current, final = input_spec, None
    manifests = []
    for stage in stages:
        cfg = stage.prepare(stage_config(stage, profile), stage_dirs)
        target = out.resolve() / stage.name  # absolute: paths derived from it do not depend on how OUT is spelled
        manifests.append(run_stage(stage, profile, current, str(target), spark=spark, master=master,
                                   overwrite=overwrite, replace_stale=True, cfg=cfg))
        stage_dirs[stage.name] = target
        if stage.feeds_next_stage:
            current, final = str(target / "kept"), stage.name
    run = {"input": input_spec, "config": profile.path, "stages": [s.name for s in stages]}
    (out / "_pipeline.json").write_text(json.dumps(run, indent=2) + "\n")
    if final is not None:
        print(f"corpus: {export_corpus(out, run, stage_dirs, final)}", flush=True)
    report = write_report(out)
    print(f"report: {report}", flush=True)
    return manifests
