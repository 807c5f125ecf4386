"""Deduplication stages: exact (document, paragraph, sentence), and later MinHash and semantic."""
