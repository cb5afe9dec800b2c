"""``python -m medseg`` (as the cohort workflow's jobs run it) and the ``medseg`` console command: the command line,
its stop signals handled before it is imported."""

import sys

from medseg import stopping


def run() -> None:
    """The command line (:func:`medseg.cli.main`), with Ctrl-C, SIGTERM and SIGHUP handled from before its imports
    (click and medseg's own: a tenth of a second, several on a loaded machine): a SIGTERM then (a scheduler's stop of
    a job just started) killed the process without a word, and a Ctrl-C ended the console command in a traceback;
    each is now its one line ("Terminated.", "Aborted.") and its exit code (143, 130)."""
    try:
        stopping.handle_stop_signals()
        from medseg.cli import main

        main()
    except KeyboardInterrupt as stop:  # a stop while the command line is imported, before main() handles one
        import contextlib

        with contextlib.suppress(OSError):  # after a hangup the terminal may be gone: the exit code tells
            sys.stderr.write(f"{getattr(stop, 'said', 'Aborted.')}\n")
        sys.exit(getattr(stop, "code", 130))


if __name__ == "__main__":
    run()
