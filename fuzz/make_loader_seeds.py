#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Seed bzImages for fuzz_loader: the load plan at its extremes.

usage: make_loader_seeds.py fuzz/corpus/loader

Each seed is a 4 KiB bzImage (protocol 2.15, 64-bit entry, a small zero
"kernel") whose first 8 bytes - the boot sector, which the loader never
reads - choose the guest RAM, the initrd and the command line length (see
fuzz_loader.c).  pref_address, init_size and kernel_alignment take the
values that once made the plan wrap around 2^64, and their neighbours.
"""
import os
import struct
import sys

# Index into fuzz_loader.c's ram_sizes.
RAM_2M, RAM_16M, RAM_64M, RAM_256M, RAM_1G, RAM_3G, RAM_4G, RAM_1T = range(8)


def bzimage(ram=RAM_256M, initrd=None, clen=0, reloc=1, align=0x200000,
            pref=0x1000000, init=0x800000, cmdline_size=2048, size=0x1000):
    k = bytearray(size)
    k[0] = ram
    struct.pack_into('<I', k, 1, initrd or 0)
    k[5] = 1 if initrd is not None else 0
    struct.pack_into('<H', k, 6, clen)
    k[0x1f1] = 4                                   # setup_sects
    k[0x1fe:0x200] = b'\x55\xaa'                    # boot_flag
    k[0x201] = 0x6a                                # header ends at 0x26c
    k[0x202:0x206] = b'HdrS'
    struct.pack_into('<H', k, 0x206, 0x020f)       # protocol 2.15
    k[0x211] = 0x01                                # LOADED_HIGH
    struct.pack_into('<I', k, 0x22c, 0x7fffffff)   # initrd_addr_max
    struct.pack_into('<I', k, 0x230, align)        # kernel_alignment
    k[0x234] = reloc                               # relocatable_kernel
    k[0x236] = 0x01                                # XLF_KERNEL_64
    struct.pack_into('<I', k, 0x238, cmdline_size)
    struct.pack_into('<Q', k, 0x258, pref)         # pref_address
    struct.pack_into('<I', k, 0x260, init)         # init_size
    return bytes(k)


SEEDS = {
    'bz_ok': bzimage(),
    'bz_ok_initrd': bzimage(ram=RAM_64M, initrd=1 << 20, clen=100),
    'bz_pref_wraps': bzimage(reloc=0, pref=0xfffffffffff00000, init=0x200000),
    'bz_pref_u64max': bzimage(reloc=0, pref=0xffffffffffffffff, init=0),
    'bz_pref_low_ram_end': bzimage(ram=RAM_4G, reloc=0, pref=0xc0000000 - 0x2000, init=0x2000),
    'bz_pref_past_low_ram': bzimage(ram=RAM_4G, reloc=0, pref=0xc0000000 - 0x1000, init=0x2000),
    'bz_pref_64g': bzimage(ram=RAM_1T, reloc=0, pref=1 << 36),
    'bz_reloc_pref_wraps': bzimage(pref=0xffffffffffffff00, init=0x200000),
    'bz_init_max': bzimage(ram=RAM_3G, reloc=0, pref=0x1000000, init=0xffffffff),
    'bz_init_max_reloc': bzimage(ram=RAM_4G, init=0xffffffff),
    'bz_align_2g': bzimage(ram=RAM_3G, align=0x80000000),
    'bz_align_2g_small': bzimage(ram=RAM_64M, align=0x80000000),
    'bz_align_not_pow2': bzimage(align=0xffffffff),
    'bz_initrd_max': bzimage(ram=RAM_1T, initrd=0xffffffff),
    'bz_initrd_fills_ram': bzimage(ram=RAM_64M, initrd=(64 << 20) - (24 << 20)),
    'bz_initrd_one_too_many': bzimage(ram=RAM_64M, initrd=(64 << 20) - (24 << 20) + 1),
    'bz_cmdline_max': bzimage(cmdline_size=0xffffffff, clen=0xffff),
    'bz_ram_2m': bzimage(ram=RAM_2M, align=0x100000, pref=0x100000, init=0x100000),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
