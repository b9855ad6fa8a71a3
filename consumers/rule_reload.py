"""Hot reload of a rule file for a long-running processor.

Marketing edits rules while the engine runs. A good edit takes effect at the
next batch; a bad one is reported (rule id, line, reason) and the engine keeps
its last good rules, so a typo never stops triggers from firing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from consumers.pipeline import Pipeline
from rules import RuleError, load_rules


class RuleFileWatcher:
    def __init__(
        self, path: Path, pipeline: Pipeline, report: Callable[[str], None] = print
    ) -> None:
        self.path = path
        self.pipeline = pipeline
        self.report = report
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def check(self) -> bool:
        """Reload if the file changed; True when new rules were installed."""
        stamp = self._stat()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            rules = load_rules(self.path)
        except RuleError as exc:
            self.report(f"rules not reloaded, keeping the last good rules: {exc}")
            return False
        except OSError as exc:
            self.report(f"rules not reloaded, keeping the last good rules: {exc}")
            return False
        self.pipeline.rules = rules
        self.report(f"rules reloaded from {self.path}: {len(rules.rules)} rules")
        return True
