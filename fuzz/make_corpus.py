#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Seed corpus for the fuzz targets, cut from the recorded libkvmi vectors.

usage: make_corpus.py libkvmi-wire.json fuzz/corpus

decoder/  : setup byte + the bytes libkvmi sent for each command, batch
            and event reply (event replies re-targeted at the CR event the
            target raises: seq 1, same vCPU)
handshake/: setup byte + libkvmi's 24-byte answer (with and without a
            cookie check), plus a few size edge cases
"""
import json
import os
import re
import struct
import sys


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def main():
    vectors = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    dec = os.path.join(out, 'decoder')
    hs = os.path.join(out, 'handshake')
    os.makedirs(dec, exist_ok=True)
    os.makedirs(hs, exist_ok=True)
    for v in vectors:
        name = re.sub(r'[^A-Za-z0-9_.-]+', '_', v['name'])
        req = bytes.fromhex(v.get('request_hex', ''))
        if v['name'].startswith(('cmd/', 'batch/', 'shim/')) and '/err-' not in v['name']:
            if req and len(req) <= 1024:
                write(os.path.join(dec, name), b'\x00' + req)
            if req and len(req) <= 64:
                write(os.path.join(dec, name + '.threaded'), b'\x08' + req)
        if v['name'].startswith('reply_event/') and len(req) >= 16:
            vcpu = struct.unpack_from('<H', req, 8)[0] & 3
            patched = bytearray(req)
            struct.pack_into('<I', patched, 4, 1)
            patched[17] = 1  # event byte: CR
            write(os.path.join(dec, name), bytes([1 | vcpu << 1]) + bytes(patched))
        if v['name'].startswith('handshake/') and v.get('request_handshake_prefix_bytes'):
            n = v['request_handshake_prefix_bytes']
            write(os.path.join(hs, name), b'\x01' + req)
            write(os.path.join(hs, name + '.nokey'), b'\x00' + req[:n])
    # kvmi extension KVMI_X_MAP_MEMORY (0x4b01): GET_MAP_TOKEN, then a
    # redeem; setup bit 4 runs the server on a unix socketpair.
    def msg(mid, seq, payload):
        return struct.pack('<HHI', mid, len(payload), seq) + payload
    tok = b'\x5a' * 32
    good = msg(22, 1, b'') + msg(0x4b01, 2, tok + struct.pack('<QQII', 0x100000, 0x3000, 0, 0))
    write(os.path.join(dec, 'x_map_memory'), b'\x10' + good)
    write(os.path.join(dec, 'x_map_memory.ro'),
          b'\x10' + msg(0x4b01, 2, tok + struct.pack('<QQII', 0x2000, 0x1000, 1, 0)))
    write(os.path.join(dec, 'x_map_memory.pipe'), b'\x00' + good)
    write(os.path.join(dec, 'x_map_memory.bad'),
          b'\x10' + msg(0x4b01, 3, tok + struct.pack('<QQII', 0x1001, 0x10, 2, 1)))
    write(os.path.join(dec, 'x_map_memory.check'),
          b'\x10' + msg(3, 4, struct.pack('<HHI', 0x4b01, 0, 0)))
    for size in (0, 23, 24, 40, 4096, 4097, 0xffffffff):
        write(os.path.join(hs, 'size-%d' % size),
              b'\x01' + struct.pack('<I', size) + b'\x00' * min(size, 64))


if __name__ == '__main__':
    main()
