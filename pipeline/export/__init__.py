"""Exports of a finished run: REFI-QDA (.qdpx project, .qdc codebook), NVivo xlsx, and .qdpx re-import.

See :mod:`pipeline.export.refi_qda` and :mod:`pipeline.export.qdpx_import`.
"""

from pipeline.export.qdpx_import import QdpxProject, qdpx_to_training_csv, read_qdpx
from pipeline.export.refi_qda import (
    export_run,
    write_codebook_qdc,
    write_nvivo_xlsx,
    write_project_qdpx,
)

__all__ = [
    "QdpxProject",
    "export_run",
    "qdpx_to_training_csv",
    "read_qdpx",
    "write_codebook_qdc",
    "write_nvivo_xlsx",
    "write_project_qdpx",
]
