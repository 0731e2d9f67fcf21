"""Tool-call evaluation: the output parser, the BFCL-style AST checker, metrics and the BFCL importer."""
