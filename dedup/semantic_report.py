"""semantic-dedup's part of report.html: figures per level, the cluster-size distribution, a 2-D
projection of a sample of document embeddings coloured by cluster, and removed pairs with their
similarity per level. Reads the stage's own outputs (embeddings/, clusters/, removed/,
removed_spans/, kept/); small samples only."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from dedup.semantic import vectors_of

SAMPLE = 3000  # document vectors in the projection
COLOURED = 12  # the largest clusters get a colour each, the rest are grey


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def size_plot(work_dir, summary: dict) -> dict | None:
    levels = {lv: s["cluster_size_histogram"] for lv, s in summary["levels"].items() if s.get("cluster_size_histogram")}
    if not levels:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    keys = sorted({k for h in levels.values() for k in h}, key=lambda k: int(k.split("-")[0]))
    width = 0.8 / len(levels)
    for i, (lv, h) in enumerate(levels.items()):
        ax.bar(np.arange(len(keys)) + i * width, [h.get(k, 0) for k in keys], width, label=lv)
    ax.set_xticks(np.arange(len(keys)) + width * (len(levels) - 1) / 2, keys)
    ax.set_xlabel("units in the k-means cluster")
    ax.set_ylabel("clusters")
    ax.set_title("Semantic (k-means) cluster sizes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(work_dir / "semantic_cluster_sizes.png", dpi=110)
    plt.close(fig)
    return {"title": "Semantic cluster sizes", "path": "semantic_cluster_sizes.png"}


def projection_plot(work_dir) -> dict | None:
    """PCA of a sample of document vectors (largest backend), coloured by k-means cluster."""
    emb = ds.dataset(str(work_dir / "embeddings")).to_table(columns=["level", "node", "space", "vector"],
                                                            filter=ds.field("level") == 0)
    if emb.num_rows < 3:
        return None
    space = np.bincount(emb.column("space").to_numpy()).argmax()
    emb = emb.filter(pa.array(emb.column("space").to_numpy() == space))
    step = max(1, emb.num_rows // SAMPLE)
    emb = emb.take(pa.array(np.arange(0, emb.num_rows, step)))
    cl = ds.dataset(str(work_dir / "clusters")).to_table(columns=["level", "doc_pos", "cluster"],
                                                         filter=ds.field("level") == "document")
    cluster_of = dict(zip(cl.column("doc_pos").to_pylist(), cl.column("cluster").to_pylist()))
    x = vectors_of(emb.column("vector"))
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    labels = np.array([cluster_of.get(n, -1) for n in emb.column("node").to_pylist()])
    top = [c for c, _ in sorted(zip(*np.unique(labels, return_counts=True)), key=lambda t: -t[1])][:COLOURED]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    rest = ~np.isin(labels, top)
    ax.scatter(xy[rest, 0], xy[rest, 1], s=4, c="#cccccc", label="other clusters")
    cmap = plt.get_cmap("tab20")
    for i, c in enumerate(top):
        m = labels == c
        ax.scatter(xy[m, 0], xy[m, 1], s=6, color=cmap(i % 20), label=f"cluster {c}")
    ax.set_title(f"Document embeddings (PCA of {len(xy):,}), the {len(top)} largest clusters coloured")
    ax.legend(fontsize=6, markerscale=2, loc="best")
    fig.tight_layout()
    fig.savefig(work_dir / "semantic_projection.png", dpi=110)
    plt.close(fig)
    return {"title": "Semantic clusters: 2-D projection of document embeddings", "path": "semantic_projection.png"}


def example_documents(work_dir, n: int = 4, chars: int = 300) -> list:
    removed = ds.dataset(str(work_dir / "removed")).to_table(
        columns=["id", "text", "duplicate_of", "similarity"], filter=ds.field("reason") == "semantic_duplicate")
    if removed.num_rows == 0:
        return []
    removed = removed.sort_by("similarity")
    picked = [removed.slice(round(i * (removed.num_rows - 1) / max(1, n - 1)), 1).to_pylist()[0]
              for i in range(min(n, removed.num_rows))]
    kept = ds.dataset(str(work_dir / "kept")).to_table(
        columns=["id", "text"], filter=ds.field("id").isin([r["duplicate_of"] for r in picked]))
    text_of = dict(zip(kept.column("id").to_pylist(), kept.column("text").to_pylist()))
    return [["document", r["id"], round(r["similarity"], 3), r["text"][:chars], r["duplicate_of"],
             (text_of.get(r["duplicate_of"]) or "")[:chars]] for r in picked]


def example_spans(work_dir, level: str, n: int = 4, chars: int = 200) -> list:
    spans = ds.dataset(str(work_dir / "removed_spans")).to_table(
        columns=["doc_id", "text", "duplicate_of", "score"], filter=ds.field("level") == level)
    if spans.num_rows == 0:
        return []
    spans = spans.sort_by("score")
    picked = [spans.slice(round(i * (spans.num_rows - 1) / max(1, n - 1)), 1).to_pylist()[0]
              for i in range(min(n, spans.num_rows))]
    return [[level, r["doc_id"], round(r["score"], 3), r["text"][:chars], r["duplicate_of"], ""] for r in picked]


def report_of(work_dir, summary: dict) -> dict:
    figures = [f for f in (size_plot(work_dir, summary), projection_plot(work_dir)) if f]
    keys = ("units", "pairs", "groups", "removed", "components_rounds")
    levels = list(summary["levels"])
    rows = [[k] + [summary["levels"][lv].get(k, 0) for lv in levels] for k in keys]
    for lv in levels:
        for backend, b in summary["levels"][lv].get("by_backend", {}).items():
            text = f"{b['units']:,} / {b['clusters']:,} / {b['largest_cluster']:,} / {b['clusters_split']}"
            rows.append([f"{backend}: units / clusters / largest / split into parts"]
                        + [text if other == lv else "" for other in levels])
    tables = [{"title": f"Semantic dedup (rule: {summary['rule']}; backends: {', '.join(summary['backends'])})",
               "columns": ["figure"] + levels, "rows": rows}]
    examples = example_documents(work_dir) + example_spans(work_dir, "paragraph") + example_spans(work_dir, "sentence")
    if examples:
        tables.append({"title": "Example semantic duplicates (removed, and the document holding the unit kept)",
                       "columns": ["level", "removed from", "similarity", "removed text", "kept in", "kept text"],
                       "rows": examples})
    return {"tables": tables, "figures": figures}
