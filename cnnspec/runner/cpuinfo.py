"""The CPU's best int8 instruction set, printed beside every int8/fp32 ratio: the same int8 model is
about 3x faster than fp32 on a CPU with VNNI and much less on one with AVX2 only, so a ratio
without it cannot be compared."""
from __future__ import annotations

import platform
from pathlib import Path

# best first: (name shown, /proc/cpuinfo flag); the first present names the machine
INT8_LEVELS = (
    ("AMX-INT8", "amx_int8"),
    ("AVX-512 VNNI", "avx512_vnni"),
    ("AVX-VNNI", "avx_vnni"),
    ("AVX-512", "avx512bw"),
    ("AVX2", "avx2"),
    ("SSE4.1", "sse4_1"),
    ("Arm i8mm", "i8mm"),
    ("Arm dot product", "asimddp"),
    ("Arm NEON", "asimd"),
)


def cpu_flags(text: str | None = None) -> frozenset[str]:
    """The flags of the first processor in /proc/cpuinfo (or in ``text``); empty where unreadable."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def int8_isa(flags: frozenset[str] | None = None) -> str:
    """'AVX-512 VNNI', 'AVX2', ... or the machine's name where no known flag is found."""
    flags = cpu_flags() if flags is None else flags
    return next((name for name, flag in INT8_LEVELS if flag in flags), platform.machine() or "unknown")


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
