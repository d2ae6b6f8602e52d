#!/usr/bin/env python3
# pick_inputs.py - chooses the few fuzzer-found inputs worth keeping next to the seeds (greedy set cover of edges).
# SPDX-License-Identifier: Apache-2.0
"""Pick at most N new corpus inputs that reach the most edges beyond the seeds.

Usage:
  mkdir FRESH && cp tests/fuzz/corpus/T/seed-* FRESH/
  fuzz_T -merge=1 -merge_control_file=CTL FRESH WORK_DIR...
  tests/fuzz/pick_inputs.py fuzz_T CTL [N=30] > keep.txt

The merge narrows the work corpus to the inputs that add features to the
seeds (FRESH, libFuzzer's initial corpus, listed first in CTL): together
they reach every edge the whole work corpus reaches. Its control file
credits each edge only to the first input that reached it, so this script
then measures each of those inputs alone (one more merge per input, into
an empty corpus: its "COV" line is then every edge it reaches) and picks
greedily: the input reaching the most edges neither the seeds nor an input
already picked reach, smaller first on ties, until N or nothing is left.
Prints the chosen paths, one a line, and a summary on stderr.
"""
import os
import subprocess
import sys
import tempfile


def read_ctl(path):
    with open(path) as f:
        lines = f.read().splitlines()
    nfiles, ninit = int(lines[0]), int(lines[1])
    files = lines[2:2 + nfiles]
    cov, added = {}, set()
    for line in lines[2 + nfiles:]:
        parts = line.split()
        if parts[0] == "COV":
            cov[int(parts[1])] = set(int(x) for x in parts[2:])
        elif parts[0] == "FT" and len(parts) > 2:
            added.add(int(parts[1]))  # new features: the merge keeps it
    return files, ninit, cov, added


def edges_of(fuzzer, paths, tmp):
    """Every edge reached by @paths together, from a merge into an empty corpus."""
    empty, inputs = os.path.join(tmp, "empty"), os.path.join(tmp, "inputs")
    ctl = os.path.join(tmp, "ctl")
    for d in (empty, inputs):
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))
    if os.path.exists(ctl):
        os.remove(ctl)
    for i, p in enumerate(paths):
        os.symlink(os.path.abspath(p), os.path.join(inputs, "%06d" % i))
    subprocess.run([fuzzer, "-merge=1", "-merge_control_file=" + ctl, empty, inputs],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    cov = read_ctl(ctl)[2]
    return set().union(*cov.values()) if cov else set()


def main():
    fuzzer, ctl = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    files, ninit, _, added = read_ctl(ctl)
    # The inputs the merge kept reach every edge the others reach.
    cands = [i for i in range(ninit, len(files)) if i in added]
    with tempfile.TemporaryDirectory() as tmp:
        base = edges_of(fuzzer, files[:ninit], tmp)
        edges = {i: edges_of(fuzzer, [files[i]], tmp) - base for i in cands}
    new = set().union(*edges.values()) if edges else set()
    chosen, covered = [], set()
    while len(chosen) < limit:
        best = max((i for i in cands if i not in chosen),
                   key=lambda i: (len(edges[i] - covered), -os.path.getsize(files[i])),
                   default=None)
        if best is None or not edges[best] - covered:
            break
        chosen.append(best)
        covered |= edges[best]
    for i in sorted(chosen):
        print(files[i])
    sys.stderr.write("pick_inputs: %d inputs of %d; new edges %d of %d (seeds reach %d)\n"
                     % (len(chosen), len(cands), len(covered), len(new), len(base)))


if __name__ == "__main__":
    main()
