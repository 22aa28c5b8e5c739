"""Reports: the answer for people (Markdown, HTML with plots) and for CI (JSON, CSV,
github-action-benchmark JSON, job summary, regression gate), all views of a run's files.

Entry points: ``slimdeploy.report.api.make_report`` and ``slimdeploy.report.gate.check_regressions``.
"""

from slimdeploy.report.settings import ReportSettings

__all__ = ["ReportSettings"]
