"""PyTorch backend for cnnspec (in progress)."""
