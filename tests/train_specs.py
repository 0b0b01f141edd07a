"""The small specs the training tests share: each trains an epoch of the 8x8 digits in well under a second."""
from __future__ import annotations

TINY = """cnnspec: 1
name: tiny-digits
input: [1, 8, 8]
layers:
  - conv2d: {filters: 8, kernel: 3, padding: same, activation: relu}
  - maxpool2d: 2
  - flatten
  - dense: 10
"""
# the same net with dropout before its head, so a run's dropout masks matter
TINY_WITH_DROPOUT = TINY.replace("  - dense: 10\n", "  - dropout: 0.1\n  - dense: 10\n")


def write(tmp_path, text: str, name: str = "spec.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)
