#!/usr/bin/env python3
"""No import circles between dropreel's modules.

Reads every file module under src/ (tests left out), finds which module each one uses through
`crate::` and `super::` paths, and fails when two or more modules reach one another (a strongly
connected group): the layers in src/lib.rs only point down. Run by .ci/run; by hand:
`python3 .ci/circles.py [CHECKOUT]`.
"""
import os
import re
import sys


def modules(src):
    """Module path (`run::jobs`) -> its file, for every file module under src/ but tests."""
    mods = {}
    for d, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs') or f == 'main.rs':
                continue
            rel = os.path.relpath(os.path.join(d, f), src)[:-3].split(os.sep)
            if rel[-1] in ('mod', 'lib'):
                rel = rel[:-1]
            if rel and rel[-1] == 'tests':
                continue
            mods['::'.join(rel)] = os.path.join(d, f)
    return mods


def uses(mods):
    """Module -> the modules it uses (not itself, not its own ancestors)."""
    def resolve(path):
        parts = path.split('::')
        for i in range(len(parts), 0, -1):
            m = '::'.join(parts[:i])
            if m in mods:
                return m
        return None

    edges = {m: set() for m in mods}
    for m, path in mods.items():
        text = open(path, encoding='utf-8').read()
        cut = text.find('#[cfg(test)]\nmod tests')
        if cut >= 0:
            text = text[:cut]
        text = re.sub(r'//.*', '', text)
        for x in re.findall(r'crate::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)', text):
            r = resolve(x)
            if r and r != m and not m.startswith(r + '::'):
                edges[m].add(r)
        base = m.split('::') if m else []
        for x in re.findall(r'\b((?:super::)+(?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)', text):
            parts = x.split('::')
            cur = list(base)
            while parts and parts[0] == 'super':
                cur, parts = cur[:-1], parts[1:]
            r = resolve('::'.join(cur + parts))
            if r and r != m and not m.startswith(r + '::'):
                edges[m].add(r)
    return edges


def circles(edges):
    """The strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, groups, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return groups


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..')
    mods = modules(os.path.join(root, 'src'))
    edges = uses(mods)
    groups = circles(edges)
    if groups:
        print('modules that import one another (the layers must only point down):', file=sys.stderr)
        for g in groups:
            pairs = [f'{a} -> {b}' for a in g for b in sorted(edges[a]) if b in g]
            print('  ' + ', '.join(g) + ': ' + '; '.join(pairs), file=sys.stderr)
        return 1
    print(f'no import circles among {len(mods)} modules')
    return 0


if __name__ == '__main__':
    sys.exit(main())
