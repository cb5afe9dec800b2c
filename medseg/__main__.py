"""``python -m medseg``: the command line (as the cohort workflow's jobs run it)."""

import sys

try:
    from medseg.cli import main
except KeyboardInterrupt:  # a Ctrl-C while the command line is imported, before main() handles one
    sys.stderr.write("Aborted.\n")
    sys.exit(130)

if __name__ == "__main__":
    main()
