import re
import subprocess

import torch

from idae import environment as env


def test_environment_names_every_package_the_report_depends_on_and_the_thread_count():
    record = env.environment()
    assert set(env.PACKAGES) <= set(record)
    assert record["torch"].startswith(torch.__version__.split("+")[0])
    assert record["threads"] == torch.get_num_threads()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["date"])


def test_the_commit_is_the_checkout_head_or_unknown_outside_a_checkout(monkeypatch, tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=env.REPOSITORY)
    if head.returncode == 0:  # a clone; a source tarball has no .git
        assert env.git_commit().startswith(head.stdout.strip())
    monkeypatch.setattr(env, "REPOSITORY", tmp_path)  # not a git checkout
    assert env.git_commit() == "unknown"


def test_the_environment_line_names_the_versions_threads_and_commit():
    line = env.describe_environment()
    for name in ("python", *env.PACKAGES, "threads", "commit"):
        assert name in line


def test_the_environment_line_names_the_cpu_and_each_numeric_setting(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE,STRICT")
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    line = env.describe_environment()
    assert f"CPU {env.cpu_model()}" in line
    assert "MKL_CBWR=COMPATIBLE,STRICT" in line and "OPENBLAS_CORETYPE=unset" in line
    assert all(f"{name}=" in line for name in env.NUMERIC_SETTINGS)


def test_a_short_commit_keeps_the_mark_of_uncommitted_changes():
    commit = "6a32db69cb956b32689d552c188a0d525e4c459e"
    assert env.short_commit(commit) == "6a32db6"
    assert env.short_commit(commit + " (idae/ modified)") == "6a32db6 (idae/ modified)"
    assert env.short_commit("unknown") == "unknown"
