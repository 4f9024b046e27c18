"""Human verification of la candidates in Label Studio (la4vla.txt Appendix 7.6).

push:   candidates → one Label Studio project per run (clips, proposals as predictions),
        or Label Studio-importable JSON when no server is configured;
pull:   annotations → per-segment verdicts, Krippendorff's alpha, retention;
server: start/stop a local server from its own virtualenv (.venv-labelstudio);
        `python -m pipelines.labelstudio.server` runs one in the foreground (`make labelstudio`).
"""

from pipelines.labelstudio.client import LabelStudioClient, LabelStudioError, settings_from_env
from pipelines.la.review.pull import VERDICT_SCHEMA, verdicts_from_export
from pipelines.la.review.push import PushResult, export_tasks_json, push_candidates, push_or_export

__all__ = [
    "VERDICT_SCHEMA", "LabelStudioClient", "LabelStudioError", "PushResult",
    "export_tasks_json", "push_candidates", "push_or_export", "settings_from_env", "verdicts_from_export",
]
