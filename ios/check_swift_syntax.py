"""Syntax check of the generated Swift bindings without a Swift toolchain.

Every .swift file under the given directories is parsed with tree-sitter-swift and the check
fails on any ERROR or MISSING node. tree-sitter-swift cannot parse a `#if` block that wraps only
an attribute (uniffi emits `#if swift(>=5.8) @_documentation(...) #endif`), so the file is first
preprocessed as the Swift compiler would: `#if swift(>=X)`, `#if compiler(>=X)` and
`#if canImport(M)` are resolved, for Swift 5.9 and again for Swift 6.0, and each result is
parsed. Any other `#if` condition fails the check rather than being guessed.
"""
import pathlib
import re
import sys

import tree_sitter_swift
from tree_sitter import Language, Parser

VERSION_CONDITION = re.compile(r"^(swift|compiler)\(>=\s*([0-9]+(?:\.[0-9]+)*)\)$")


def version_tuple(text):
    return tuple(int(p) for p in text.split("."))


def evaluate(condition, version, path, line_no):
    condition = condition.strip()
    m = VERSION_CONDITION.match(condition)
    if m:
        return version >= version_tuple(m.group(2))
    if re.match(r"^canImport\([A-Za-z_][A-Za-z0-9_]*\)$", condition):
        return True
    raise SystemExit(f"{path}:{line_no}: unsupported #if condition {condition!r}")


def preprocess(source, version, path):
    out = []
    # Each frame: [branch_taken_already, currently_active, parent_active]
    stack = []
    active = True
    for line_no, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#if "):
            parent = active
            taken = parent and evaluate(stripped[4:], version, path, line_no)
            stack.append([taken, parent])
            active = taken
            out.append("")
        elif stripped.startswith("#elseif "):
            frame = stack[-1]
            take = frame[1] and not frame[0] and evaluate(stripped[8:], version, path, line_no)
            frame[0] = frame[0] or take
            active = take
            out.append("")
        elif stripped == "#else":
            frame = stack[-1]
            active = frame[1] and not frame[0]
            frame[0] = True
            out.append("")
        elif stripped == "#endif":
            frame = stack.pop()
            active = frame[1]
            out.append("")
        else:
            out.append(line if active else "")
    if stack:
        raise SystemExit(f"{path}: unterminated #if")
    return "\n".join(out).encode()


def problems(node, out):
    if node.type == "ERROR" or node.is_missing:
        out.append(node)
    for child in node.children:
        problems(child, out)
    return out


def main(dirs):
    parser = Parser(Language(tree_sitter_swift.language()))
    files = [p for d in dirs for p in sorted(pathlib.Path(d).rglob("*.swift"))]
    if not files:
        print("swift syntax: no .swift files found", file=sys.stderr)
        return 1
    passed = failed = 0
    for path in files:
        for version in [(5, 9), (6, 0)]:
            tree = parser.parse(preprocess(path.read_text(encoding="utf-8"), version, path))
            found = problems(tree.root_node, [])
            for node in found[:10]:
                line, col = node.start_point
                kind = "missing" if node.is_missing else "syntax error"
                print(f"{path}:{line + 1}:{col + 1}: {kind} near {node.type} (Swift {version[0]}.{version[1]})")
            print(f"swift syntax: {path.name} as Swift {version[0]}.{version[1]}: {len(found)} error nodes")
            if found:
                failed += 1
            else:
                passed += 1
    print(f"swift syntax: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["ios/Sources"]))
