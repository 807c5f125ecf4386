"""spark-submit entry point for the whole chain:
spark-submit [--master URL] jobs/pipeline.py --config configs/baichuan2.yaml --input IN --output OUT"""
import sys
from pathlib import Path

# Replace this script's own folder on the path with the repo root, so that no job file can
# shadow a standard-library module.
sys.path[0] = str(Path(__file__).resolve().parent.parent)
from pipeline.cli import main  # noqa: E402

raise SystemExit(main(["run", *sys.argv[1:]]))
