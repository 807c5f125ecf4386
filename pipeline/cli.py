"""Command line: `python -m pipeline <stage> ...`, `python -m pipeline run ...`, `... report`.

The CLI is the one part of pipeline/ that looks stages up (lazily, by name); the rest of the core
never imports a stage. Errors a user can fix print one line and exit with code 2.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

from pipeline.errors import UserError
from pipeline.registry import STAGES
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


def load_stage(name: str):
    target = STAGES.get(name)
    if target is None:
        raise UserError(f"unknown stage {name!r} (known: {', '.join(available_stages())})")
    module, attr = target.split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"stage {name!r} is not available: {exc}") from None


def available_stages() -> list[str]:
    """Stages whose module is present (a checkout may lack optional stage packages)."""
    out = []
    for name, target in STAGES.items():
        try:
            if importlib.util.find_spec(target.split(":")[0]) is not None:
                out.append(name)
        except ModuleNotFoundError:
            continue
    return out


def _common(p: argparse.ArgumentParser, need_io: bool = True) -> None:
    if need_io:
        p.add_argument("--input", required=True, help="file, directory or glob of JSONL/JSONL.gz/parquet, "
                       "or an earlier stage's output directory")
        p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--config", default=None, help=f"YAML profile (default: {DEFAULT_CONFIG.name})")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable)")
    p.add_argument("--master", default=None, help="Spark master (default: $SPARK_MASTER or the profile's, local[*])")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--skip-bad-files", action="store_true",
                   help="quarantine unreadable files (corrupt gzip, truncated parquet) instead of failing")


def build_parser(stage_names: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline",
                                     description="Spark pre-training data pipeline (Baichuan 2 style)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the profile's stages in order, then write report.html")
    _common(run)
    run.add_argument("--stages", default=None, help="comma-separated subset/order of stages to run")
    rep = sub.add_parser("report", help="(re)write report.html for a pipeline output directory")
    rep.add_argument("--output", required=True)
    rep.add_argument("--figure", action="append", default=[], metavar="TITLE=PNG",
                     help="add a figure section (repeatable), e.g. 'Training loss=out/train/loss_curve.png'")
    for name in stage_names:
        stage = load_stage(name)
        p = sub.add_parser(name, help=stage.description or name)
        _common(p)
        for opt in stage.cli_options:
            p.add_argument(opt.flag, dest="stage_opt_" + opt.key, default=None, help=opt.help)
    return parser


def _profile(args, stage_names):
    from pipeline.config import load_profile

    config = args.config or (str(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else None)
    overrides = list(args.set)
    if getattr(args, "skip_bad_files", False):
        overrides.append("read.skip_bad_files=true")
    return load_profile(config, overrides, set(STAGES))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        names = available_stages()
        args = build_parser(names).parse_args(argv)
        if args.command == "report":
            from pipeline.report import write_report

            out = Path(args.output)
            if not out.is_dir():
                raise UserError(f"no pipeline output at {out}")
            figures = []
            for item in args.figure:
                title, sep, path = item.partition("=")
                if not sep or not Path(path).is_file():
                    raise UserError(f"--figure takes TITLE=PATH to an existing PNG, got {item!r}")
                figures.append((title, Path(path)))
            print(write_report(out, figures))
            return 0
        profile = _profile(args, names)
        if args.command == "run":
            from pipeline.run import run_pipeline

            wanted = args.stages.split(",") if args.stages else profile.stages
            if not wanted:
                raise UserError("no stages to run: set pipeline.stages in the config or pass --stages")
            stages = [load_stage(n.strip()) for n in wanted]
            run_pipeline(profile, stages, args.input, args.output, master=args.master, overwrite=args.overwrite)
            return 0
        from pipeline.config import apply_override
        from pipeline.stage import run_stage, stage_config

        stage = load_stage(args.command)
        for opt in stage.cli_options:
            value = getattr(args, "stage_opt_" + opt.key)
            if value is not None:
                apply_override(profile.raw, f"{stage.name}.{opt.key}={value}")
        cfg = stage_config(stage, profile)
        run_stage(stage, profile, args.input, args.output, master=args.master, overwrite=args.overwrite, cfg=cfg)
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
