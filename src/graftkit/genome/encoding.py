"""The canonical binary encoding of a genome (byte layout in docs/genome.md).

Little-endian, no names, no module paths: only what the model computes. Two genomes
have equal encodings exactly when their canonical node lists are equal.
"""

from __future__ import annotations

import struct
from typing import Any

from graftkit.errors import GraftError

MAGIC = b"GKGN"
KINDS = {"input": 0, "param": 1, "buffer": 2, "const": 3, "op": 4}
ARG_TAGS = {"n": 0, "r": 1, "i": 2, "f": 3, "b": 4, "s": 5, "d": 6, "l": 7, "y": 8}


def _str(out: bytearray, text: str) -> None:
    raw = text.encode("utf-8")
    out += struct.pack("<H", len(raw)) + raw


def _int(out: bytearray, value: int) -> None:
    out += struct.pack("<q", max(min(value, (1 << 63) - 1), -(1 << 63)))


def _arg(out: bytearray, arg: tuple) -> None:
    from graftkit.genome.canonical import float_bits

    tag = arg[0]
    if tag not in ARG_TAGS:
        raise GraftError(f"genome encoding: unknown argument tag {tag!r}")
    out.append(ARG_TAGS[tag])
    if tag == "r":
        out += struct.pack("<I", arg[1])
    elif tag == "i":
        _int(out, arg[1])
    elif tag == "f":
        _int(out, float_bits(arg[1]))
    elif tag == "b":
        out.append(1 if arg[1] else 0)
    elif tag in ("s", "d"):
        _str(out, arg[1])
    elif tag == "l":
        out += struct.pack("<H", len(arg[1]))
        for item in arg[1]:
            _arg(out, item)
    elif tag == "y":
        _int(out, arg[1])
        _int(out, arg[2])


def encode_nodes(nodes: list[Any], outputs: list[int], dynamic: bool = True) -> bytes:
    """Encode a node list (a whole genome or one block of it)."""
    from graftkit.genome.hf import TRACE_SIZES

    out = bytearray(MAGIC)
    out += struct.pack("<BB", 1, 1 if dynamic else 0)
    out.append(len(TRACE_SIZES))
    for b, s in TRACE_SIZES:
        out += struct.pack("<HH", b, s)
    out += struct.pack("<I", len(nodes))
    for node in nodes:
        out.append(KINDS[node.kind])
        _str(out, node.op)
        _str(out, node.dtype)
        out.append(len(node.shape))
        for d in node.shape:
            if isinstance(d, tuple):
                out.append(1)
                _int(out, d[0])
                _int(out, d[1])
            else:
                out.append(0)
                _int(out, d)
        out += struct.pack("<H", len(node.args))
        for a in node.args:
            _arg(out, a)
        out += struct.pack("<i", node.index)
        if node.kind == "const":
            out += bytes.fromhex(node.value[:32].ljust(32, "0")) if _is_hex(node.value) else node.value.encode()[:16].ljust(16, b"\0")
    out += struct.pack("<I", len(outputs))
    for o in outputs:
        out += struct.pack("<I", o)
    return bytes(out)


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text[:32])
        return len(text) >= 32
    except ValueError:
        return False


def encode(genome: Any) -> bytes:
    return encode_nodes(genome.nodes, genome.outputs, genome.dynamic)
