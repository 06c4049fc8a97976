"""Deployment: SavedModel for TF Serving, TFLite, and translating images of any size.

    export_generators / export_run   SavedModel under export/NAME/<version>/, verified
    export_tflite                    .tflite files (float32, float16, dynamic, int8), verified
    load                             a Translator for a run, an export or a .tflite file
    Translator                       any-size translation: reflect pad, tiles, blending
    translate_files                  a file or folder (recursively) into an output folder
    tfi2i.export.serving             TF Serving REST/gRPC request building and parsing
"""

from tfi2i.export.savedmodel import VerificationError, export_generators, export_run
from tfi2i.export.tflite import export_tflite
from tfi2i.export.translator import Translator, load, translate_files

__all__ = ["Translator", "VerificationError", "export_generators", "export_run", "export_tflite",
           "load", "translate_files"]
