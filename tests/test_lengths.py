#!/usr/bin/env python3
"""Lengths of dropreel's integration tests: for each `#[test]` / `#[tokio::test…]` function in
tests/it/ (its folders included), the lines from its `fn` line to its closing brace (the first line that is `}` at
the function's indentation), both included. Prints the count, median and mean; `-v` lists each.

Usage: python3 tests/test_lengths.py [-v] [ROOT]  (ROOT defaults to the repository)."""

import pathlib
import statistics
import sys

args = [a for a in sys.argv[1:] if a != "-v"]
root = pathlib.Path(args[0] if args else pathlib.Path(__file__).resolve().parent.parent)
lengths = []
for path in sorted((root / "tests" / "it").rglob("*.rs")):
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        attr = lines[i].strip()
        if attr == "#[test]" or attr.startswith("#[tokio::test"):
            j = i + 1
            while not lines[j].lstrip().startswith(("fn ", "async fn ")):
                j += 1
            indent = lines[j][: len(lines[j]) - len(lines[j].lstrip())]
            k = j
            while lines[k] != indent + "}":
                k += 1
            name = lines[j].split("fn ", 1)[1].split("(")[0]
            lengths.append((k - j + 1, f"{path.relative_to(root)}::{name}"))
            i = k
        i += 1
if "-v" in sys.argv:
    for n, name in sorted(lengths):
        print(n, name)
ns = [n for n, _ in lengths]
print(f"{len(ns)} tests, median {statistics.median(ns)} lines, mean {statistics.mean(ns):.1f}")
