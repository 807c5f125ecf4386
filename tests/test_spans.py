"""The one span-cutting path (pipeline.spans): the outermost cut wins, ties go to the coarser
level, every character is cut at most once, and the original text is rebuilt exactly."""
import pyarrow as pa

from pipeline.spans import REMOVED_SPAN_SCHEMA, choose_outermost, cut_documents, cuts_table

TEXT = "First paragraph. Its second sentence.\n\nSecond paragraph here.\n\nThird one."
OTHER = "Another document with one sentence. And a second one here."


def docs_batch():
    return pa.RecordBatch.from_pydict({"id": ["a", "b", "c"], "text": [TEXT, OTHER, "untouched"],
                                       "doc_pos": pa.array([7, 3, 9], pa.int64())})


def chosen(rows):
    """rows: (doc_pos, start, end, level[, duplicate_of]) -> choose_outermost's table."""
    cols = list(zip(*[(*r, None)[:5] for r in rows]))
    return choose_outermost(cuts_table(list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]), "test",
                                       list(cols[4])))


def rebuild(kept: str, spans) -> str:
    for start, piece in sorted(spans):
        kept = kept[:start] + piece + kept[start:]
    return kept


def test_nested_cuts_keep_the_outermost_in_text_order():
    t = chosen([(7, 39, 63, "sentence", "x3"), (7, 17, 37, "sentence", "x2"), (7, 0, 39, "paragraph", "x1"),
                (3, 36, 58, "sentence", "y1")])
    assert list(zip(t.column("doc_pos").to_pylist(), t.column("start").to_pylist())) == [(3, 36), (7, 0), (7, 39)]
    assert t.column("duplicate_of").to_pylist() == ["y1", "x1", "x3"]


def test_same_range_goes_to_the_coarser_level():
    t = chosen([(7, 0, 17, "sentence"), (7, 0, 17, "paragraph")])
    assert t.column("level").to_pylist() == ["paragraph"]


def test_partial_overlap_is_never_cut_twice():
    t = chosen([(7, 12, 15, "line"), (7, 5, 20, "line"), (7, 0, 10, "line")])
    # [5, 20) starts inside the kept [0, 10); [12, 15) starts after its end
    assert list(zip(t.column("start").to_pylist(), t.column("end").to_pylist())) == [(0, 10), (12, 15)]


def test_cut_documents_rebuilds_exactly_and_follows_the_schema():
    docs = docs_batch()
    t = chosen([(7, 17, 39, "sentence", "d9"), (7, 63, 73, "sentence", "d8"), (3, 0, 36, "sentence", "d7"),
                (42, 0, 5, "sentence", "elsewhere")])  # a cut of a document not in this batch
    text, spans, left = cut_documents(docs, t)
    assert spans.schema == REMOVED_SPAN_SCHEMA and spans.num_rows == 3
    assert text.to_pylist() == [TEXT[:17] + TEXT[39:63], OTHER[36:], "untouched"]
    assert spans.column("doc_id").to_pylist() == ["b", "a", "a"]
    assert spans.column("text").to_pylist() == [OTHER[:36], TEXT[17:39], TEXT[63:73]]
    assert sorted(left) == [0, 1] and left[0] == (TEXT[:17] + TEXT[39:63], 1)
    for row, original in ((0, TEXT), (1, OTHER)):
        mine = [(s, p) for d, s, p in zip(spans.column("doc_id").to_pylist(), spans.column("start").to_pylist(),
                                          spans.column("text").to_pylist()) if d == docs.column("id")[row].as_py()]
        assert rebuild(text[row].as_py(), mine) == original


def test_no_cuts():
    text, spans, left = cut_documents(docs_batch(), choose_outermost(cuts_table([], [], [], [], "x")))
    assert text.to_pylist() == [TEXT, OTHER, "untouched"] and spans.num_rows == 0 and left == {}
