"""Settings come from TUTORWIRE_* variables, each checked and named when wrong."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from matcher.settings import MatcherSettings
from sessionserver.classes import ClassSettings
from sessionserver.settings import CLASS_PREFIX, MATCHER_PREFIX, PREFIX, Settings, SettingsError
from wire import Limits


def test_defaults_without_environment() -> None:
    assert Settings.from_env({}) == Settings()


def test_every_field_has_a_variable() -> None:
    env = {"TUTORWIRE_PORT": "9001", "TUTORWIRE_DEV_MODE": "yes", "TUTORWIRE_JOIN_TIMEOUT_S": "2.5",
           "TUTORWIRE_MAX_FRAME_BYTES": "1000", "TUTORWIRE_RATE_MESSAGES_PER_S": "10",
           "TUTORWIRE_SECRET": "s" * 20}
    settings = Settings.from_env(env)
    assert (settings.port, settings.dev_mode, settings.join_timeout_s) == (9001, True, 2.5)
    assert settings.limits == dataclasses.replace(Limits(), max_frame_bytes=1000, rate_messages_per_s=10.0)
    assert settings.signing_secret() == "s" * 20


@pytest.mark.parametrize(("name", "value"), [("TUTORWIRE_PORT", "eighty"), ("TUTORWIRE_DEV_MODE", "maybe"),
                                             ("TUTORWIRE_MAX_COORDINATE", "0"), ("TUTORWIRE_JOIN_TIMEOUT_S", "x")])
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name.removeprefix("TUTORWIRE_").lower() + "|" + name):
        Settings.from_env({name: value})


def test_unset_secret_gives_a_random_one() -> None:
    assert Settings().signing_secret() != Settings().signing_secret()


def test_readme_lists_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    names = [PREFIX + f.name.upper() for f in dataclasses.fields(Settings)
             if f.name not in ("limits", "matcher", "classes")]
    names += [CLASS_PREFIX + f.name.upper() for f in dataclasses.fields(ClassSettings)]
    names += [PREFIX + f.name.upper() for f in dataclasses.fields(Limits)]
    names += [MATCHER_PREFIX + f.name.upper() for f in dataclasses.fields(MatcherSettings)]
    missing = [n for n in names if f"`{n}`" not in readme]
    assert missing == []


def test_matcher_settings_from_environment() -> None:
    settings = Settings.from_env({"TUTORWIRE_MATCHER_OFFER_LEASE_S": "12", "TUTORWIRE_MATCHER_LOAD_CAP": "3"})
    assert (settings.matcher.offer_lease_s, settings.matcher.load_cap) == (12.0, 3)
    with pytest.raises(SettingsError, match="batch_interval_s"):
        Settings.from_env({"TUTORWIRE_MATCHER_BATCH_INTERVAL_S": "5"})
    with pytest.raises(SettingsError, match="TUTORWIRE_MATCHER_LOAD_CAP"):
        Settings.from_env({"TUTORWIRE_MATCHER_LOAD_CAP": "many"})
