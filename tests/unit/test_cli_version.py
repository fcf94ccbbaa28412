"""`legato --version`: the installed package's version, and exit 0."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from cluster.cli import main


def test_version_prints_the_installed_packages_version(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"legato {version('legato')}"
