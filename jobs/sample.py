"""spark-submit entry point: spark-submit [--master URL] jobs/sample.py --input IN --output OUT"""
import sys
from pathlib import Path

# Replace this script's own folder on the path with the repo root, so that no job file can
# shadow a standard-library module.
sys.path[0] = str(Path(__file__).resolve().parent.parent)
from pipeline.cli import main  # noqa: E402

raise SystemExit(main(["sample", *sys.argv[1:]]))
