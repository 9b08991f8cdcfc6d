"""Datasets (folder, zip, built-in), the training batch stream, and the dataset tool (core.data.tool)."""

from core.data.dataset import DatasetError, ImageDataset, resolve_data_path
from core.data.loader import InfiniteLoader, LoaderState

__all__ = [
    "DatasetError",
    "ImageDataset",
    "InfiniteLoader",
    "LoaderState",
    "resolve_data_path",
]
