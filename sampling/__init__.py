"""Sampling: a weight per document from its quality and duplicate columns, and integer repeats
drawn to a token mixture over sources and languages (the `sample` stage)."""
