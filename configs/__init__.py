"""Presets: one JSON file per method (installed as the package `tfi2i.configs`).

Each file has `defaults` (settings of the training platform that the method's
paper chose differently from the library's defaults) and `datasets`
(per-dataset settings from the paper's appendix). A method's own
hyper-parameters are declared, with their defaults, in its class
(`options`), not here. `tfi2i.config.resolve_config` layers them: library
defaults < method options' defaults < preset defaults < dataset preset <
flags. Keys starting with "_" are notes.
"""
