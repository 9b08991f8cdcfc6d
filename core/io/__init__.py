"""Small file-system helpers shared across ADA Studio (atomic writes; one-version tensor reads in core.io.tensors)."""

from core.io.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
