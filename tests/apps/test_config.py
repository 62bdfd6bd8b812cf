"""shipyard-app.toml: what an app folder declares, and a clear error naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.apps import AppSpec, read_app_config
from shipyard.errors import UsageError

from ._folders import make_app


def test_a_folder_declares_its_name_version_template_entry_and_models(tmp_path: Path) -> None:
    spec = read_app_config(make_app(tmp_path / "tumour_app"))
    assert spec == AppSpec("tumour_app", "0.1.0", "web", "app.main:app", ["tumour_triage"])
    assert (spec.module, spec.attribute, spec.bundle_name) == (
        "app.main",
        "app",
        "tumour_app_0_1_0",
    )


def test_template_and_models_may_be_left_out(tmp_path: Path) -> None:
    (tmp_path / "shipyard-app.toml").write_text(
        '[app]\nname = "mine"\nversion = "2.0rc1"\nentry = "server:api"\n'
    )
    assert read_app_config(tmp_path) == AppSpec("mine", "2.0rc1", None, "server:api", [])


def test_a_folder_without_the_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"shipyard-app\.toml does not exist") as caught:
        read_app_config(tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[app\n", r"cannot read .*shipyard-app\.toml"),
        ('name = "x"\n', r"unknown key\(s\) name"),
        ("[tool]\nx = 1\n", r"unknown key\(s\) tool"),
        ('[app]\nversion = "1.0.0"\nentry = "a:b"\n', r"app\.name is missing"),
        ('[app]\nname = "x"\nentry = "a:b"\n', r"app\.version is missing"),
        ('[app]\nname = "x"\nversion = "1.0.0"\n', r"app\.entry is missing"),
        ('[app]\nname = "../x"\nversion = "1"\nentry = "a:b"\n', r"app\.name = '\.\./x'"),
        ('[app]\nname = "x"\nversion = "latest"\nentry = "a:b"\n', r"app\.version = 'latest'"),
        ('[app]\nname = "x"\nversion = "1"\nentry = "app.main"\n', r"app\.entry = 'app\.main'"),
        ('[app]\nname = "x"\nversion = "1"\nentry = "a:b"\nmodels = "m"\n', r"app\.models"),
        ('[app]\nname = "x"\nversion = "1"\nentry = "a:b"\nmodel = ["m"]\n', r"app\.model\b"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "shipyard-app.toml").write_text(text)
    with pytest.raises(UsageError, match=message) as caught:
        read_app_config(tmp_path)
    assert str(tmp_path / "shipyard-app.toml") in str(caught.value)
