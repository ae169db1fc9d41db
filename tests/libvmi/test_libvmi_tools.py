#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tests of the LibVMI helpers of tests/libvmi, as TAP.

  test_libvmi_tools.py btf BTF_OFFSETS [BTF]
      btf-offsets against an independent reader of the same BTF, pahole
      (Debian's dwarves): LibVMI's five offsets, then every plain member of
      a few structs with anonymous structs/unions in them; a missing member
      is an error; the comparison itself catches a wrong offset.
      SKIP when the BTF (default /sys/kernel/btf/vmlinux) or pahole is
      missing, or pahole cannot read that BTF.
  test_libvmi_tools.py sysmap KALLSYMS_TO_SYSMAP
      kallsyms-to-sysmap.sh on a made-up kallsyms file.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

LIBVMI_KEYS = {
    'linux_tasks': ('task_struct', 'tasks'),
    'linux_mm': ('task_struct', 'mm'),
    'linux_pid': ('task_struct', 'pid'),
    'linux_name': ('task_struct', 'comm'),
    'linux_pgd': ('mm_struct', 'pgd'),
}
# Structs whose every plain member is compared: mm_struct keeps most of its
# members in an anonymous struct, sk_buff nests anonymous unions and structs
# at non-zero offsets.
STRUCTS = ['task_struct', 'mm_struct', 'sk_buff']

# "<declaration>;   /* OFFSET SIZE */" (OFFSET is "byte:bit" for bitfields)
MEMBER = re.compile(r'^\s*(?P<decl>[^/{}]*?);\s*/\*\s*(?P<off>\d+)(?P<bit>:\s*\d+)?\s+\d+\s*\*/')
CLOSE = re.compile(r'^\s*\}(?:\s*__attribute__\(\(.*\)\))?\s*(?P<name>\w+)?\s*(\[\d*\])*\s*;')


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, cond, what, detail=''):
        self.n += 1
        if not cond:
            self.failed += 1
        print('%s %d - %s' % ('ok' if cond else 'not ok', self.n, what))
        for line in detail.splitlines() if detail and not cond else []:
            print('#   ' + line)

    def done(self):
        print('1..%d' % self.n)
        return 1 if self.failed else 0


def member_name(decl):
    """The member a pahole declaration names; None for a bitfield."""
    if re.search(r':\s*\d+\s*$', decl):
        return None
    m = re.search(r'\(\s*\*+\s*(\w+)\s*\)', decl)  # function pointer
    if m:
        return m.group(1)
    m = re.search(r'(\w+)\s*(\[[^\]]*\]\s*)*$', decl)
    return m.group(1) if m else None


def pahole_members(text):
    """{member: byte offset} of pahole's print of one struct: its members
    and those of its anonymous structs/unions (pahole prints those with
    offsets from the start of the outer struct), not those of named inline
    ones.  Bitfields are left out."""
    stack = [{}]
    for line in text.splitlines()[1:]:
        if line.rstrip().endswith('{'):
            stack.append({})
            continue
        c = CLOSE.match(line)
        if c:
            if len(stack) == 1:
                break
            inner = stack.pop()
            if not c.group('name'):
                stack[-1].update(inner)
            continue
        m = MEMBER.match(line)
        if m and not m.group('bit'):
            name = member_name(m.group('decl'))
            if name:
                stack[-1][name] = int(m.group('off'))
    return stack[0]


def mismatches(expected, got):
    """Lines naming every key whose offsets differ or is missing."""
    out = []
    for key in sorted(expected):
        if got.get(key) != expected[key]:
            out.append('%s: pahole %s, btf-offsets %s' % (key, expected[key], got.get(key)))
    return out


def parse_assignments(text, sep=';'):
    """{key: int} of "key = 0x...;" lines."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'^\s*([\w.]+)\s*=\s*(0x[0-9a-f]+)\s*' + sep + r'?\s*$', line)
        if m:
            out[m.group(1)] = int(m.group(2), 16)
    return out


def run(argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)


def pahole_structs(btf):
    """{struct: {member: offset}}, or a reason to skip."""
    out = {}
    for s in STRUCTS:
        p = run(['pahole', '-F', 'btf', '-C', s, btf])
        members = pahole_members(p.stdout) if p.returncode == 0 else {}
        if not members:
            return None, 'pahole cannot print struct %s from %s (%s)' % (
                s, btf, (p.stderr.strip().splitlines() or ['no output'])[-1])
        out[s] = members
    return out, None


def check_libvmi_keys(t, prog, btf, ref):
    p = run([prog, btf])
    got = parse_assignments(p.stdout)
    t.check(p.returncode == 0 and len(got) == len(LIBVMI_KEYS),
            'btf-offsets prints the five LibVMI keys', p.stdout + p.stderr)
    for key, (s, m) in sorted(LIBVMI_KEYS.items()):
        t.check(got.get(key) == ref[s].get(m), '%s = %s.%s = %s (pahole %s)' % (
            key, s, m, hex(got[key]) if key in got else None, ref[s].get(m)))
    # The comparison catches a wrong offset.
    wrong = dict((k, ref[s][m]) for k, (s, m) in LIBVMI_KEYS.items())
    wrong['linux_pid'] += 8
    t.check(len(mismatches(wrong, got)) == 1, 'a wrong offset (linux_pid + 8) is caught')
    return got


def check_all_members(t, prog, btf, ref):
    for s in STRUCTS:
        specs = ['%s.%s' % (s, m) for m in sorted(ref[s])]
        p = run([prog] + ['--field=' + x for x in specs] + [btf])
        got = parse_assignments(p.stdout, sep='')
        diff = mismatches(dict(('%s.%s' % (s, m), o) for m, o in ref[s].items()), got)
        t.check(p.returncode == 0 and not diff, 'all %d plain members of %s as pahole' % (
            len(specs), s), p.stderr + '\n'.join(diff[:20]))


def check_errors(t, prog, btf, got):
    p = run([prog, '--field', 'task_struct.no_such_member', btf])
    t.check(p.returncode == 1 and 'no member no_such_member' in p.stderr,
            'a missing member is an error', p.stderr)
    p = run([prog, '--field', 'no_such_struct.pid', btf])
    t.check(p.returncode == 1 and 'no struct' in p.stderr, 'a missing struct is an error', p.stderr)
    p = run([prog, '--name', 'guest', btf])
    t.check(p.returncode == 2, '--name without --sysmap is refused')
    p = run([prog, '--name', 'guest', '--sysmap', 'System.map', btf])
    t.check(p.returncode == 2, 'a sysmap path LibVMI would not parse is refused')
    p = run([prog, '--name', 'debian-guest', '--sysmap', '/var/lib/kvmi/System.map', btf])
    block = p.stdout.splitlines()
    t.check(p.returncode == 0 and block[0] == 'debian-guest {' and block[-1] == '}'
            and '    ostype = "Linux";' in block
            and '    sysmap = "/var/lib/kvmi/System.map";' in block
            and parse_assignments(p.stdout) == got, 'the libvmi.conf entry', p.stdout + p.stderr)


def test_btf(prog, btf):
    if not os.path.exists(btf):
        print('1..0 # SKIP no BTF at %s' % btf)
        return 0
    if not shutil.which('pahole'):
        print('1..0 # SKIP pahole not installed (Debian: dwarves)')
        return 0
    ref, why = pahole_structs(btf)
    if ref is None:
        print('1..0 # SKIP ' + why)
        return 0
    t = Tap()
    got = check_libvmi_keys(t, prog, btf, ref)
    check_all_members(t, prog, btf, ref)
    check_errors(t, prog, btf, got)
    return t.done()


KALLSYMS = """ffffffff81000000 T _text
ffffffff82a0c940 D init_task
0000000000000000 A fixed_percpu_data
ffffffff81001000 T _stext
ffffffffc0a01000 t kvm_init\t[kvm]
"""


def test_sysmap(script):
    t = Tap()
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, 'kallsyms')
        with open(src, 'w') as f:
            f.write(KALLSYMS)
        p = run(['sh', script, src])
        want = ['0000000000000000 A fixed_percpu_data', 'ffffffff81000000 T _text',
                'ffffffff81001000 T _stext', 'ffffffff82a0c940 D init_task']
        t.check(p.returncode == 0 and p.stdout.splitlines() == want,
                'kernel symbols in address order, module symbols left out', p.stdout + p.stderr)
        with open(src, 'w') as f:
            f.write(re.sub(r'^[0-9a-f]+', '0' * 16, KALLSYMS, flags=re.M))
        p = run(['sh', script, src])
        t.check(p.returncode == 1 and 'is 0' in p.stderr, 'all-zero addresses are refused', p.stderr)
        p = run(['sh', script, os.path.join(d, 'missing')])
        t.check(p.returncode == 1, 'an unreadable file is an error')
    return t.done()


def main(argv):
    if len(argv) >= 3 and argv[1] == 'btf':
        return test_btf(argv[2], argv[3] if len(argv) > 3 else '/sys/kernel/btf/vmlinux')
    if len(argv) == 3 and argv[1] == 'sysmap':
        return test_sysmap(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
