"""Presets: one JSON file per method (installed as the package `tfi2i.configs`).

Each file has `defaults` (the method's hyper-parameters, from the paper and
the authors' code) and `datasets` (per-dataset settings from the paper's
appendix). `tfi2i.config.resolve_config` layers them: library defaults <
method defaults < dataset preset < flags.
"""
