"""The README's two set-up commands, `.ci/run` and `system-packages.sh` agree with each other."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert len(blocks) >= 2, "README must start with two ```bash set-up blocks"
    return [blocks[0].strip(), blocks[1].strip()]


def test_readme_starts_with_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_blocks = readme.split("## ", 1)[0]  # everything before the first section heading
    assert len(re.findall(r"```bash\n", first_blocks)) == 2
    for command in _setup_commands():
        assert "\n" not in command, "each set-up command is one line"
        assert command.startswith("bash system-packages.sh && "), command


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = _setup_commands()[1]
    assert test_command.endswith("&& pytest"), test_command
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines, (
        f".ci/run must run the README's test command verbatim:\n{test_command}"
    )


def test_main_job_installs_what_the_tests_install() -> None:
    main_job, test_command = _setup_commands()
    install = test_command.removesuffix(" && pytest")
    assert main_job.startswith(install + " && "), "both commands install the same way"


def test_system_packages_script_is_idempotent_bash_that_lists_its_packages() -> None:
    script = ROOT / "system-packages.sh"
    text = script.read_text()
    for package in ("redis-server", "bubblewrap", "python3.11-doc", "xvfb", "tesseract-ocr"):
        assert package in text
    # Syntax check without running apt.
    subprocess.run(["bash", "-n", str(script)], check=True)
