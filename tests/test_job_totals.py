"""The one line that says what a cohort's jobs ask a cluster for in all."""

from __future__ import annotations

from medseg.cohort.job_totals import AskedJob, asked_line


def test_the_line_adds_up_the_jobs_cpu_gpu_and_memory_time():
    """Two GPU inference jobs of 4 CPUs (10 and 20 min, 3,300 MB), two scoring jobs and the report: the hours are the
    jobs' run times times their CPUs, GPUs and memory; every infer and evaluate job failing twice brings their CPU
    time to 1 + 2 + 3 times."""
    jobs = [AskedJob("infer", 10, 3300, 4, 1), AskedJob("infer", 20, 3300, 4, 1), AskedJob("evaluate", 6, 900),
            AskedJob("evaluate", 6, 900), AskedJob("report", 60, 1000)]
    line = asked_line(jobs)
    assert line.startswith("the sheet's jobs ask the cluster for: 2 infer (10-20 min, 3,300 MB, 4 CPU, 1 GPU each), "
                           "2 evaluate (6 min, 900 MB each), 1 report (60 min, 1,000 MB); ")
    # CPU: 4 x 30 + 12 + 60 = 192 min; GPU: 30 min; memory: 3.3 x 30 + 0.9 x 12 + 1 x 60 = 169.8 GB min
    assert "their run times reserve 3.2 CPU h, 0.5 GPU h and 2.8 GB h of memory on their first attempts, " in line
    # 6 x (120 + 12) + 60 = 852 min; memory 3.3 x (10 + 40 + 90 + 20 + 80 + 180) + 0.9 x 2 x (6 + 24 + 54) + 60
    assert ("14.2 CPU h, 3.0 GPU h and 26.6 GB h were every infer/evaluate job to fail 2 times (each retry with more "
            "time, and more memory as after an out-of-memory kill; ") in line


def test_the_worst_case_counts_the_memory_and_the_reports_retry():
    """The worst case counted CPU hours alone, and not the report's retry (the profile's retries: 1), which asks for
    twice its run time and memory: it now says the CPU, GPU and memory hours of every attempt, the report's retry
    among them, and names it."""
    jobs = [AskedJob("infer", 10, 3300, 4, 1), AskedJob("infer", 20, 3300, 4, 1), AskedJob("evaluate", 6, 900),
            AskedJob("evaluate", 6, 900), AskedJob("report", 60, 1000)]
    line = asked_line(jobs, other_retries=1)
    # CPU: 4 x (60 + 120) + 2 x 36 + (60 + 120) = 972 min; GPU: 60 + 120 = 180 min; memory (attempt k: k times the
    # time and the memory): 3.3 x (140 + 280) + 0.9 x 2 x 84 + 1.0 x (60 + 240) = 1,837.2 GB min
    assert ("on their first attempts, 16.2 CPU h, 3.0 GPU h and 30.6 GB h were every infer/evaluate job to fail 2 "
            "times and the report 1 time (") in line, line
    # a report run time given for each attempt (runtime=90*attempt) counts as given
    line = asked_line([AskedJob("report", 90, 1000, 1, 0, (90, 180, 270))], other_retries=1)
    assert "1.5 CPU h and 1.5 GB h of memory on their first attempts, 4.5 CPU h and 7.5 GB h were every " in line, line


def test_a_run_time_or_memory_given_by_set_resources_is_named_not_counted():
    """A --set-resources expression planning cannot work out (None) is named in its rule's part and left out of the
    hours; CPU jobs name no GPU."""
    line = asked_line([AskedJob("infer", None, None), AskedJob("report", 60, 1000)])
    assert line.startswith("the sheet's jobs ask the cluster for: 1 infer (run time from --set-resources, memory from "
                           "--set-resources), 1 report (60 min, 1,000 MB); their run times reserve 1.0 CPU h and 1.0 "
                           "GB h of memory")
    assert "GPU" not in line


def test_a_run_time_set_for_each_attempt_counts_as_given_not_scaled_by_the_rule():
    """A --set-resources infer:runtime=60*attempt gives the retries 120 and 180 min: every infer job failing twice
    brings it to 360 min, not 6 times its first attempt's by the rule's scaling (a fixed runtime=60: 180 min)."""
    line = asked_line([AskedJob("infer", 60, 1300, 4, 1, (60, 120, 180)),
                       AskedJob("evaluate", 10, 900, 1, 0, (10,) * 3)])
    # CPU: 4 x 60 + 10 = 250 min; all attempts: 4 x 360 + 30 = 1,470 min
    assert "1 infer (60 min, 1,300 MB, 4 CPU, 1 GPU), 1 evaluate (10 min, 900 MB)" in line
    assert "their run times reserve 4.2 CPU h, 1.0 GPU h and " in line
    assert "24.5 CPU h, 6.0 GPU h and " in line and " GB h were every infer/evaluate job to fail 2 times (" in line


def test_a_memory_given_for_each_attempt_counts_as_given_in_the_worst_case():
    """A fixed --set-resources infer:mem_mb=4000 asks each attempt for 4,000 MB: the worst case counted 4,000, 8,000
    and 12,000 MB (the rule's scaling, which the setting replaces)."""
    line = asked_line([AskedJob("infer", 60, 4000, 1, 0, None, (4000, 4000, 4000))])
    # (60 + 120 + 180) min x 4 GB = 1,440 GB min
    assert "1.0 CPU h and 4.0 GB h of memory on their first attempts, 6.0 CPU h and 24.0 GB h were every " in line, line
