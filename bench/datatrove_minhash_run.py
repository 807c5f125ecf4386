"""datatrove's 4-step MinHash pipeline on one language's shards (run by bench_minhash_peers.py inside
the peer venv, which holds datatrove; never imported by the repo's code).

usage: python datatrove_minhash_run.py INPUT_DIR WORK_DIR LANGUAGE TASKS WORKERS BANDS ROWS
Writes WORK_DIR/kept and WORK_DIR/removed (JSONL.gz with ids and minhash_cluster_id)."""
import sys

from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                              MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig


def main():
    inp, work, language, tasks, workers, bands, rows = sys.argv[1:8]
    tasks, workers, bands, rows = int(tasks), int(workers), int(bands), int(rows)
    config = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=bands, hashes_per_bucket=rows, n_grams=5)
    logs = f"{work}/logs"
    LocalPipelineExecutor(pipeline=[JsonlReader(inp), MinhashDedupSignature(f"{work}/sigs", config=config,
                                                                             language=language)],
                          tasks=tasks, workers=workers, logging_dir=f"{logs}/1").run()
    LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(f"{work}/sigs", f"{work}/buckets", config=config)],
                          tasks=bands, workers=workers, logging_dir=f"{logs}/2").run()
    LocalPipelineExecutor(pipeline=[MinhashDedupCluster(f"{work}/buckets", f"{work}/remove", config=config,
                                                        save_cluster_id=True)],
                          tasks=1, workers=1, logging_dir=f"{logs}/3").run()
    LocalPipelineExecutor(pipeline=[JsonlReader(inp),
                                    MinhashDedupFilter(f"{work}/remove", load_cluster_ids=True,
                                                       exclusion_writer=JsonlWriter(f"{work}/removed")),
                                    JsonlWriter(f"{work}/kept")],
                          tasks=tasks, workers=workers, logging_dir=f"{logs}/4").run()


if __name__ == "__main__":
    main()
