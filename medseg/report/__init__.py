"""Cohort QA report: collect per-case results, flag and summarise them, render a self-contained HTML page.

Modules: ``collect`` (find and read case results; with ``result_records``, ``case_result``, ``stale_results`` and
``expected_cases``), ``checks`` (border contact and grid of a segmentation file), ``flags`` (QA rules and the
worst-first order), ``summary`` (statistics, provenance, summary.json), ``table`` (cohort.tsv), ``plots`` and
``overlay`` (figures; the overlay with ``overlay_arrays`` and ``overlay_image``), ``failed_jobs`` (the workflow's
jobs that failed as a whole, each shown once), ``html`` (the page; with ``html_tables``, ``html_cards`` and
``html_parts``), ``build`` (all together).
"""

from __future__ import annotations

__all__ = ["build_report"]


def __dir__() -> list[str]:
    return sorted([*globals(), "build_report"])


def __getattr__(name: str):
    """``build_report`` is :func:`medseg.report.build.build_report` itself (its signature and docstring), imported
    on first use: importing this package stays cheap."""
    if name == "build_report":
        from medseg.report.build import build_report

        return build_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
