"""The one registry of stages: name -> "module:attribute" of its Stage instance.

The CLI looks stages up here (lazily, by name: the rest of the core never imports a stage), and
pipeline.spark ships every package named here to the executors of a cluster, so a new stage's
package cannot be missing there.
"""
from __future__ import annotations

STAGES = {
    "exact-dedup": "dedup.exact:STAGE",
    "minhash-dedup": "dedup.minhash_dedup:STAGE",
    "semantic-dedup": "dedup.semantic_dedup:STAGE",
    "train-quality": "quality.stages:TRAIN_QUALITY_STAGE",
    "quality-signals": "quality.stages:QUALITY_SIGNALS_STAGE",
    "quality-filter": "quality.stages:QUALITY_FILTER_STAGE",
    "train-tokenizer": "tokenizer_training.stage:TRAIN_TOKENIZER_STAGE",
    "sample": "sampling.stage:SAMPLE_STAGE",
    "tokenize": "tokenizer_training.stage:TOKENIZE_STAGE",
}


def stage_packages() -> tuple:
    """The top-level packages executors need: the core and every registered stage's."""
    return ("pipeline", *sorted({target.split(":")[0].split(".")[0] for target in STAGES.values()}))
