#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Packs a test payload (ELF64) and the boot shim into a QEMU BIOS image.

Usage: pack.py SHIM_BIN PAYLOAD_ELF OUTPUT

The image is the payload's PT_LOAD segments (file bytes only) packed from
offset 0, then the 4 KiB shim at the end, whose header gets the entry point
and one {dst, src, filesz, memsz} record per segment (src is the linear
address of the bytes once QEMU maps the image below 4 GiB).  Its size is
the smallest multiple of 64 KiB that holds both (QEMU's rule for -bios).
Layout: shim.h.
"""
import struct
import sys

SHIM_SIZE = 0x1000
SHIM_MAGIC = b"KVMIQBT1"
SHIM_HDR_ENTRY = 8
SHIM_HDR_NSEG = 16
SHIM_HDR_SEGS = 24
SHIM_MAX_SEGS = 8
IMAGE_ALIGN = 0x10000
PAYLOAD_MIN = 0x100000          # KVMI_GUEST_PAYLOAD_MIN_GPA
LOW_RAM_END = 0x80000000        # the shim caps the RAM it reports at 2 GiB
PT_LOAD = 1


def die(msg):
    sys.exit(f"pack.py: {msg}")


def load_segments(path):
    with open(path, "rb") as f:
        elf = f.read()
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        die(f"{path}: not a little-endian ELF64 file")
    (e_type, e_machine, _, e_entry, e_phoff, _, _, _, e_phentsize,
     e_phnum) = struct.unpack_from("<HHIQQQIHHH", elf, 16)
    if e_machine != 62:
        die(f"{path}: not an x86-64 ELF")
    segs = []
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        if off + 56 > len(elf):
            die(f"{path}: program header {i} beyond the end of the file")
        (p_type, _, p_offset, _, p_paddr, p_filesz,
         p_memsz, _) = struct.unpack_from("<IIQQQQQQ", elf, off)
        if p_type != PT_LOAD or p_memsz == 0:
            continue
        if p_filesz > p_memsz or p_offset + p_filesz > len(elf):
            die(f"{path}: segment {i} is malformed")
        if p_paddr < PAYLOAD_MIN or p_paddr + p_memsz > LOW_RAM_END:
            die(f"{path}: segment {i} at {p_paddr:#x}+{p_memsz:#x} is outside "
                f"[{PAYLOAD_MIN:#x}, {LOW_RAM_END:#x})")
        segs.append((p_paddr, elf[p_offset:p_offset + p_filesz], p_memsz))
    if not segs:
        die(f"{path}: no PT_LOAD segment")
    if len(segs) > SHIM_MAX_SEGS:
        die(f"{path}: {len(segs)} segments, the shim takes {SHIM_MAX_SEGS}")
    if not any(a <= e_entry < a + m for a, _, m in segs):
        die(f"{path}: entry {e_entry:#x} is in no segment")
    return e_entry, segs


def main():
    if len(sys.argv) != 4:
        die("usage: pack.py SHIM_BIN PAYLOAD_ELF OUTPUT")
    with open(sys.argv[1], "rb") as f:
        shim = bytearray(f.read())
    if len(shim) != SHIM_SIZE or shim[:8] != SHIM_MAGIC:
        die(f"{sys.argv[1]}: not the {SHIM_SIZE}-byte boot shim")
    entry, segs = load_segments(sys.argv[2])

    data = bytearray()
    records = []
    for dst, body, memsz in segs:
        while len(data) % 16:
            data.append(0)
        records.append((dst, len(data), len(body), memsz))
        data += body
    size = -(-(len(data) + SHIM_SIZE) // IMAGE_ALIGN) * IMAGE_ALIGN
    base = (1 << 32) - size
    image = bytearray(size)
    image[:len(data)] = data

    struct.pack_into("<QI", shim, SHIM_HDR_ENTRY, entry, len(records))
    for i, (dst, off, filesz, memsz) in enumerate(records):
        struct.pack_into("<IIII", shim, SHIM_HDR_SEGS + 16 * i, dst, base + off, filesz, memsz)
    image[size - SHIM_SIZE:] = shim
    with open(sys.argv[3], "wb") as f:
        f.write(image)


if __name__ == "__main__":
    main()
