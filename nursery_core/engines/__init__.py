"""Inference engines besides torch: llama.cpp serving GGUF copies of the pooled models (see llamacpp.py)."""
