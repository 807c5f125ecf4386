"""Check exported tokenizer directories with whatever transformers this Python has.

    python bench/hf_compat.py TEXTS.json DIR [DIR ...]

For every directory (as `export_tokenizer_hf` writes it): `AutoTokenizer.from_pretrained(dir)`
with no remote code, then on every text: ids equal to SentencePiece's on `tokenizer.model`, and
`decode(encode(text)) == text`. Prints one JSON object. Runs in the throwaway venvs that
`bench/hf_compat.sh` makes (transformers 4.4x), so it imports nothing from this project.
"""
import json
import sys
import time


def check(directory: str, texts: list) -> dict:
    import sentencepiece as spm
    import transformers
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    t0 = time.time()
    try:
        tok = AutoTokenizer.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - a failed load is the result
        return {"dir": directory, "transformers": transformers.__version__, "loaded": False,
                "error": f"{type(exc).__name__}: {exc}"[:500]}
    sp = spm.SentencePieceProcessor(model_file=f"{directory}/tokenizer.model")
    ids_bad, dec_bad = [], []
    for i, t in enumerate(texts):
        ids = tok.encode(t, add_special_tokens=False)
        if ids != sp.encode(t):
            ids_bad.append(i)
        if tok.decode(ids) != t:
            dec_bad.append(i)
    return {"dir": directory, "transformers": transformers.__version__,
            "tokenizers": __import__("tokenizers").__version__, "class": type(tok).__name__, "loaded": True,
            "texts": len(texts), "same_ids": len(texts) - len(ids_bad), "exact_decode": len(texts) - len(dec_bad),
            "id_mismatch_indexes": ids_bad[:100], "decode_mismatch_indexes": dec_bad[:100],
            "first_id_mismatches": [repr(texts[i][:60]) for i in ids_bad[:5]],
            "first_decode_mismatches": [repr(texts[i][:60]) for i in dec_bad[:5]],
            "seconds": round(time.time() - t0, 1)}


if __name__ == "__main__":
    texts = json.loads(open(sys.argv[1], encoding="utf-8").read())
    print(json.dumps([check(d, texts) for d in sys.argv[2:]], ensure_ascii=False))
