"""spark-submit entry point: spark-submit [--master URL] jobs/quality_filter.py --input IN --output OUT"""
import sys
from pathlib import Path

# Replace this script's own folder on the path with the repo root, so that no job file can
# shadow a standard-library module (a file named jobs/tokenize.py would hide Python's tokenize).
sys.path[0] = str(Path(__file__).resolve().parent.parent)
from pipeline.cli import main  # noqa: E402

raise SystemExit(main(["quality-filter", *sys.argv[1:]]))
