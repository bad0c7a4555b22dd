"""Dataset readers for the public DFER layouts plus a generic manifest, behind one entry point."""
from __future__ import annotations

from dfer_ros.datasets.common import ClipRecord, DatasetError, DatasetSplit

__all__ = ["ClipRecord", "DatasetError", "DatasetSplit", "read_split", "READERS"]

READERS = ("dfew", "ferv39k", "mafw", "affwild2", "manifest")


def read_split(kind: str, root: str, split: str, **options) -> DatasetSplit:
    """Read one split of a dataset: kind in READERS, options are the reader's keyword arguments."""
    if kind == "dfew":
        from dfer_ros.datasets.dfew import read_dfew
        return read_dfew(root, split=split, **options)
    if kind == "ferv39k":
        from dfer_ros.datasets.ferv39k import read_ferv39k
        return read_ferv39k(root, split=split, **options)
    if kind == "mafw":
        from dfer_ros.datasets.mafw import read_mafw
        return read_mafw(root, split=split, **options)
    if kind == "affwild2":
        from dfer_ros.datasets.affwild2 import read_affwild2
        return read_affwild2(root, split=split, **options)
    if kind == "manifest":
        from dfer_ros.datasets.manifest import read_manifest
        return read_manifest(root, split=split, **options)
    raise ValueError(f"unknown dataset kind {kind!r}; one of {', '.join(READERS)}")
