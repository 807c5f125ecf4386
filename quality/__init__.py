"""Quality scoring stages (heuristics, language id, fastText classifier, sentence-level filter)
and sampling weights. Not built yet: see the open issues. They will follow the stage contract in
pipeline/stage.py and write scores as columns beside the documents (scoring kept apart from
selection, as dolma and RedPajama v2 do)."""
