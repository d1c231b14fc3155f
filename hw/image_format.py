"""The model-image format: magic, version, header and section-table layouts.

The driver and the image writer (:mod:`tritium.sw.compiler.image`) and the board's image
loader (:mod:`tritium.hw.host`) read these constants; docs/images.md describes
the format field by field.
"""

import struct

MAGIC = b"TRITIUM\0"
IMAGE_VERSION = 2
HEADER = struct.Struct("<8sHHHH8sII")
SECTION = struct.Struct("<HHIII")
SECTION_TYPES = {"PROGRAM": 1, "WEIGHTS": 2, "THRESHOLDS": 3, "META": 4, "WSTORE": 5}
