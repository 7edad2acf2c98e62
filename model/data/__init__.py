"""Streaming the library store into training: the reader, epoch plans and augmentation."""

from .reader import SPLITS, TRANSFORMS, DataError, EpochPlan, LibraryReader, corrupt_input, dihedral

__all__ = ["SPLITS", "TRANSFORMS", "DataError", "EpochPlan", "LibraryReader", "corrupt_input", "dihedral"]
