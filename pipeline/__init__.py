"""Shared core of the pre-training data pipeline: document schema, readers/writers, Spark
session, segmentation, stage contract and manifests, config, CLI and report.

The core never imports a stage package; the CLI (pipeline.cli) is the one place that looks
stages up by name.
"""
__version__ = "0.1.0"
