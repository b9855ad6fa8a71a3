"""A running engine picks up a good rule edit and keeps its last good rules on a bad one."""

from __future__ import annotations

import os
from pathlib import Path

from consumers.rule_reload import RuleFileWatcher
from engage.runtime import Engine
from rules import default_rules_path


def test_bad_edit_keeps_last_good_rules_and_good_edit_applies(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    text = default_rules_path().read_text()
    path.write_text(text)
    pipeline = engine.pipeline()
    messages: list[str] = []
    watcher = RuleFileWatcher(path, pipeline, messages.append)
    original = pipeline.rules
    assert watcher.check() is False and pipeline.rules is original

    path.write_text(
        text.replace("id: detractor-follow-up", "id: detractor-follow-up\n  oops: [", 1)
    )
    os.utime(path, ns=(1, 10**18))
    assert watcher.check() is False
    assert pipeline.rules is original
    assert "keeping the last good rules" in messages[-1]

    path.write_text(text.replace("version: 1", "version: 2", 1))
    os.utime(path, ns=(1, 2 * 10**18))
    assert watcher.check() is True
    assert pipeline.rules is not original and pipeline.rules is not None
    assert pipeline.rules.rules[0].version == 2
    assert "rules reloaded" in messages[-1]
