"""Keras backend for cnnspec (in progress)."""
