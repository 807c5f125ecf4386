"""Tokenizer training (SentencePiece BPE with Baichuan 2 settings), evaluation, Hugging Face
export, and token shards (Megatron .bin/.idx + parquet). Stages: tokenizer_training.stage."""
