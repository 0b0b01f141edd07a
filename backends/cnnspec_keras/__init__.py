"""Keras 3 backend for cnnspec (TensorFlow). Importing this package imports neither Keras nor
TensorFlow; the backend's methods do, when first used."""
from .backend import KerasBackend

__all__ = ["KerasBackend"]
