"""Result pages people can judge: side-by-side report pages and real-vs-fake studies.

    write_report(["runs/a", "runs/b"], "report/")   index pages, study.html, report.json
    merge_results(["alice.json", "bob.json"])        pooled fooling rates, Wilson 95% CIs

The command lines are `tfi2i-report` and `tfi2i-study-merge` (tfi2i.cli.report).
"""

from tfi2i.report.build import StudyDefaults, write_report
from tfi2i.report.study import format_markdown, merge_results, wilson_interval, write_merged

__all__ = ["StudyDefaults", "format_markdown", "merge_results", "wilson_interval",
           "write_merged", "write_report"]
