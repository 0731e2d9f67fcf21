"""Guarded decoding: a grammar built from the offered tools' schemas (grammar.py) applied while a model generates
(processor.py), so an answer is either free text or call blocks naming offered tools with schema-valid JSON.

The grammar side imports no torch; the processor side is imported by inference only when a model runs.
"""
