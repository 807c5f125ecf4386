"""`python -m tokenizer_training COMMAND`:

  evaluate   --model M --heldout PATH --output DIR [--compare a,b,...|none] [--max-bytes-per-lang N]
             our model and the comparison tokenizers on held-out text (parquet or JSONL(.gz) with
             text and lang): eval.json, eval.md, eval.html, eval.png
  export-hf  --model M --output DIR     tokenizer.model + tokenizer.json + tokenizer_config.json +
             special_tokens_map.json (a fast tokenizer, exact against SentencePiece)
  train      --sentences FILE [FILE...] --output DIR [--set key=value ...]
             SentencePiece on ready sentence files (no Spark); settings as in TrainerSettings
"""
from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    from tokenizer_training import evaluate as ev
    from tokenizer_training.settings import TrainTokenizerConfig

    p = argparse.ArgumentParser(prog="python -m tokenizer_training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate", help="compression and round-trip figures on held-out text")
    e.add_argument("--model", required=True, help="tokenizer.model (or a directory holding it)")
    e.add_argument("--heldout", required=True, help="parquet/JSONL file or directory with text and lang")
    e.add_argument("--output", required=True)
    e.add_argument("--compare", default=",".join(ev.COMPARATORS),
                   help=f"comparison tokenizers, comma-separated, or 'none' (known: {', '.join(ev.COMPARATORS)})")
    e.add_argument("--max-bytes-per-lang", type=int, default=0, help="cap the held-out text per language")
    e.add_argument("--reference", default=TrainTokenizerConfig.reference_tokenizer,
                   help="Baichuan 2's released tokenizer.model, evaluated as 'baichuan2 (released)' ('none': skip)")
    x = sub.add_parser("export-hf", help="write the Hugging Face tokenizer files")
    x.add_argument("--model", required=True)
    x.add_argument("--output", required=True)
    t = sub.add_parser("train", help="train SentencePiece on sentence files")
    t.add_argument("--sentences", nargs="+", required=True)
    t.add_argument("--output", required=True)
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)

    if args.command == "evaluate":
        from tokenizer_training.encode import resolve_model_path

        try:
            model = resolve_model_path(args.model)
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        docs = ev.load_documents(args.heldout, args.max_bytes_per_lang)
        if not docs:
            print(f"error: no documents with text in {args.heldout}", file=sys.stderr)
            return 2
        compare = [] if args.compare.strip().lower() in ("", "none") else [c.strip() for c in args.compare.split(",")]
        reference = None if args.reference.strip().lower() in ("", "none") else args.reference
        result = ev.evaluate(model, docs, compare, reference=reference)
        files = ev.write_outputs(result, args.output)
        print(ev.markdown(result).split("\n## Per language")[0])
        print(json.dumps(files, indent=2))
        ours = result["rows"][0]["results"]["all"]
        return 0 if ours["round_trip_ok"] == ours["documents"] else 1
    if args.command == "export-hf":
        from tokenizer_training.encode import resolve_model_path
        from tokenizer_training.hf_export import check_hf_ids, export_tokenizer_hf

        files = export_tokenizer_hf(resolve_model_path(args.model), args.output)
        print(json.dumps({"files": files, "check": check_hf_ids(args.output, ["hello world 123", "你好，世界"])},
                         indent=2, ensure_ascii=False))
        return 0
    if args.command == "train":
        import dataclasses

        import yaml

        from tokenizer_training.settings import TrainerSettings
        from tokenizer_training.train import TrainingError, train_sentencepiece

        overrides = {}
        names = {f.name for f in dataclasses.fields(TrainerSettings)}
        for item in args.set:
            k, _, v = item.partition("=")
            if k not in names:
                print(f"error: unknown setting {k!r}", file=sys.stderr)
                return 2
            overrides[k] = yaml.safe_load(v)
        try:
            res = train_sentencepiece(args.sentences, args.output, TrainerSettings(**overrides))
        except (TrainingError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({k: v for k, v in res.as_dict().items() if k != "settings"}, indent=2, ensure_ascii=False))
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
