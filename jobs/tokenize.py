"""spark-submit entry point: spark-submit [--master URL] jobs/tokenize.py --input IN --output OUT [...]"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.cli import main  # noqa: E402

raise SystemExit(main(["tokenize", *sys.argv[1:]]))
