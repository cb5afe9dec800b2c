"""What the cohort's check that an input is here costs for a DICOM folder of many files.

    python benchmarks/availability_check.py [--files 3000 30000] [--bytes 2048] [--repeats 3]

Every time the workflow is read, each sample's input is checked to be here (``medseg.cohort.records.unavailable``):
a DICOM folder some of whose files are not (a dataset's dropped slices, links leading nowhere) counts as away. This
times, in one run, on folders of placeholder files of ``--bytes`` each, the walk that words the missing files (file by
file, which the check used) against the check (``missing_under``, which walks the entries' types and sizes first and
words the files only where one may be missing), checks that both answer alike, and prints their ratio. Files up to
1024 bytes are read, as a pointer file of that size would be.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from medseg.io import files
from medseg.io.files import missing_under
from medseg.shown_warnings import show_warnings


def worded(folder: Path) -> bool:
    """The walk that words the missing files, file by file (the check before it walked the types and sizes first)."""
    _, absent, broken = files._walk(folder)
    return files._missing_text(folder, absent, broken) is not None


def best_seconds(call, repeats: int) -> tuple[float, object]:
    """The fastest of ``repeats`` calls, and the answer."""
    times, answer = [], None
    for _ in range(repeats):
        clock = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - clock)
    return min(times), answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, nargs="+", default=[3000, 30000])
    parser.add_argument("--bytes", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)
    if min(args.files) < 1 or args.bytes < 0 or args.repeats < 1:
        parser.error("--files and --repeats must be at least 1, --bytes at least 0")
    print(f"a folder of N files of {args.bytes} bytes, nothing missing (best of {args.repeats})")
    with tempfile.TemporaryDirectory() as temp:
        for count in args.files:
            folder = Path(temp) / f"study{count}"
            folder.mkdir()
            data = b"\0" * args.bytes
            for index in range(count):
                (folder / f"IM{index:06d}.dcm").write_bytes(data)
            worded_s, said = best_seconds(lambda: worded(folder), args.repeats)  # noqa: B023
            checked, answer = best_seconds(lambda: missing_under(folder) is not None, args.repeats)  # noqa: B023
            if said != answer:
                print(f"  N {count}: the answers differ ({said} against {answer})")
                return 1
            print(f"  N {count:6d}: words the files {worded_s * 1000:7.1f} ms, checks {checked * 1000:7.1f} ms "
                  f"(ratio {checked / worded_s:.2f}; {checked / count * 1e6:.1f}"
                  " µs a file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
