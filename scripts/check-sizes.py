#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Keeps the code base's size rules: no .c file in the given folders over
MAX_FILE lines, no function over MAX_FUNC lines (from the line of its
opening brace to its closing one).  Prints TAP, one check per file."""
import os
import re
import sys

MAX_FILE = 800
MAX_FUNC = 80
# A function definition: a line at column 0 that ends a parameter list,
# followed by a line that is just "{".
DEF = re.compile(r'^[A-Za-z_][^;]*\)\s*$')


def functions(lines):
    """(name line, length) of every top-level function body."""
    i = 0
    while i < len(lines) - 1:
        if lines[i + 1].rstrip() == '{' and DEF.match(lines[i]):
            start = i + 1
            j = start + 1
            while j < len(lines) and lines[j].rstrip() != '}':
                j += 1
            yield i + 1, lines[i].strip(), j - start + 1
            i = j
        i += 1


def main(root, folders):
    n = failed = 0
    for folder in folders:
        for dirpath, _, names in sorted(os.walk(os.path.join(root, folder))):
            for name in sorted(names):
                if not name.endswith('.c'):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                with open(path, encoding='utf-8', errors='replace') as f:
                    lines = f.read().split('\n')
                problems = []
                if len(lines) > MAX_FILE:
                    problems.append('%d lines (max %d)' % (len(lines), MAX_FILE))
                for line, head, length in functions(lines):
                    if length > MAX_FUNC:
                        problems.append('%s:%d %s: %d lines (max %d)' % (rel, line, head[:60], length, MAX_FUNC))
                n += 1
                if problems:
                    failed += 1
                    print('not ok %d - %s' % (n, rel))
                    for p in problems:
                        print('#   ' + p)
                else:
                    print('ok %d - %s' % (n, rel))
    print('1..%d' % n)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2:] or ['src']))
