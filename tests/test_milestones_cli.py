"""`waifugen roster check` checks the phases file beside the roster too: each mistake one line
(`file:line: field: message`), exit 1; a good or absent file is reported ok. Through the real
entry point, in a process of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from waifugen_assets.core.config import project_root


def _check(roster: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WAIFUGEN_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", "roster", "check",
                           str(roster)], env=env, capture_output=True, text=True, timeout=120)


def test_roster_check_reports_the_phases_file_beside_the_roster(tmp_path: Path) -> None:
    roster = tmp_path / "characters.yaml"
    shutil.copyfile(project_root() / "characters.yaml", roster)
    phases = tmp_path / "phases.yaml"

    absent = _check(roster, tmp_path)
    assert absent.returncode == 0, absent.stderr
    assert f"{phases}: not there, the defaults: launch at 0, growth at 10,000, established " \
        "at 50,000" in absent.stdout

    phases.write_text("version: 1\n"
                      "demote_after_days: 1\n"
                      "phases:\n"
                      "  - {name: launch, followers: 0, daily_slots: 4}\n"
                      "  - {name: growth, followers: 10000, daily_slots: 3,\n"
                      "     content_rating: mature}\n")
    bad = _check(roster, tmp_path)
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [
        f"{phases}:2: demote_after_days: must be 0 (never demote) or at least 2: one low read "
        "must not demote a character",
        f"{phases}:5: phases[1].daily_slots: must be at least the phase before's 4: a phase "
        "unlocks volume, it never takes it back",
        f"{phases}:6: phases[1].content_rating: phases unlock volume and features, never "
        "content: every phase is general-audience; remove this field",
        f"3 error(s) in {phases}",
    ]

    shutil.copyfile(project_root() / "phases.yaml", phases)
    good = _check(roster, tmp_path)
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines()[-1] == (
        f"{phases}: ok, 3 phases: launch at 0, growth at 10,000, established at 50,000")
