"""Figures and the report are executed again when what they read changed: the store, the verification's
result, or the package's code (a change to a figure must not leave an old report "up to date")."""

import os

from siamese_lib.pipeline import timings


def test_presentation_state_follows_the_store_the_verification_and_the_code(tmp_path, monkeypatch):
    store, verify = tmp_path / "store", tmp_path / "verify" / "verify.json"
    store.mkdir()
    (store / "a.json").write_text("{}")
    package = tmp_path / "package"
    package.mkdir()
    (package / "figures.py").write_text("COLOR = 'red'\n")
    monkeypatch.setattr(timings, "PACKAGE_DIR", package)
    timings._package_digest.cache_clear()
    first = timings.presentation_state(store, also=[verify])
    assert timings.presentation_state(store, also=[verify]) == first  # nothing changed: up to date
    (store / "b.json").write_text("{}")
    second = timings.presentation_state(store, also=[verify])
    assert second != first
    verify.parent.mkdir()
    verify.write_text('{"verdict": "agrees"}')
    third = timings.presentation_state(store, also=[verify])
    assert third != second
    os.utime(verify, ns=(1, 1))  # verified again
    assert timings.presentation_state(store, also=[verify]) != third
    fourth = timings.presentation_state(store, also=[verify])
    (package / "figures.py").write_text("COLOR = 'blue'\n")
    timings._package_digest.cache_clear()  # a new process: the runner computes it once per invocation
    assert timings.presentation_state(store, also=[verify]) != fourth
    timings._package_digest.cache_clear()


def test_presentation_state_follows_the_code_version_the_report_stamps(tmp_path, monkeypatch):
    """A commit that changes only pyproject.toml (or params/, notebooks/) changes the report's code stamp: the
    report is no longer up to date."""
    (tmp_path / "a.json").write_text("{}")
    monkeypatch.setattr(timings, "code_version", lambda: "aaaaaaaaaaaa")
    before = timings.presentation_state(tmp_path)
    assert timings.presentation_state(tmp_path) == before
    monkeypatch.setattr(timings, "code_version", lambda: "bbbbbbbbbbbb")
    assert timings.presentation_state(tmp_path) != before
