"""Label Studio's brush RLE (the ``rle`` list of a ``brushlabels`` result).

The mask is stored as an RGBA image flattened row-major to ``H*W*4`` bytes and packed
with thi.ng's rle-pack: a 32-bit value count, a 5-bit word size minus one, four 4-bit
run-length field widths minus one, then records ``flag(1) size-index(2) length-1`` with
either one repeated word (flag 1) or ``length`` literal words (flag 0). A pixel belongs
to the mask when its alpha byte is non-zero.

``encode`` is bit-for-bit the same as label-studio-converter's ``brush.mask2rle`` on a
0/255 mask; ``decode`` also checks the stream instead of trusting it.
"""
from __future__ import annotations

import numpy as np


def decode(rle: object, height: int, width: int) -> np.ndarray:
    """Decode to an ``(height, width)`` bool mask; ValueError when the stream is corrupt."""
    if not isinstance(rle, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                            and 0 <= v <= 255 for v in rle):
        raise ValueError("rle must be a list of byte values 0..255")
    bits = np.unpackbits(np.asarray(rle, np.uint8))
    s = (bits + 48).tobytes().decode("ascii")
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        if pos + n > len(s):
            raise ValueError(f"stream ends at bit {len(s)} while reading {n} more bits (truncated?)")
        pos += n
        return int(s[pos - n:pos], 2)

    num = read(32)
    if num != height * width * 4:
        raise ValueError(f"header says {num} values; expected height*width*4 = {height * width * 4}")
    word = read(5) + 1
    if word > 8:
        raise ValueError(f"word size is {word} bits; expected at most 8")
    sizes = [read(4) + 1 for _ in range(4)]
    out = np.zeros(num, np.uint8)
    i = 0
    while i < num:
        repeat = read(1)
        j = i + 1 + read(sizes[read(2)])
        if j > num:
            raise ValueError(f"a run ends at value {j}, past the {num} values in the header")
        if repeat:
            out[i:j] = read(word)
        else:
            n = (j - i) * word
            read(n)  # bounds check and advance
            chunk = bits[pos - n:pos].reshape(j - i, word)
            out[i:j] = chunk @ (1 << np.arange(word - 1, -1, -1))
        i = j
    return out.reshape(height, width, 4)[:, :, 3] > 0


def encode(mask: np.ndarray) -> list[int]:
    """Encode an ``(H, W)`` mask the way label-studio-converter does (value 255, 4 channels)."""
    arr = np.repeat(np.where(np.asarray(mask).ravel() != 0, 255, 0).astype(np.uint8), 4)
    num = arr.size
    head = f"{num:032b}{7:05b}" + "".join(f"{x - 1:04b}" for x in (3, 4, 8, 16))
    runs: list[tuple[int, int]] = []  # (length, value)
    if num:
        change = np.flatnonzero(arr[1:] != arr[:-1])
        ends = np.append(change, num - 1)
        lengths = np.diff(np.append(-1, ends))
        runs = list(zip(lengths.tolist(), arr[ends].tolist()))
    body = []
    for n, v in runs:
        if n == 1:
            body.append(f"000000{v:08b}")
        elif n <= 8:
            body.append(f"100{n - 1:03b}{v:08b}")
        elif n <= 16:
            body.append(f"101{n - 1:04b}{v:08b}")
        elif n <= 256:
            body.append(f"110{n - 1:08b}{v:08b}")
        else:
            while n > 2**16:
                body.append(f"111{2**16 - 1:016b}{v:08b}")
                n -= 2**16
            body.append(f"111{n - 1:016b}{v:08b}")
    bitstr = head + "".join(body)
    bitstr += "0" * (8 - len(bitstr) % 8)  # as the reference: a full zero byte when aligned
    b = np.frombuffer(bitstr.encode("ascii"), np.uint8) - 48
    return np.packbits(b).tolist()
