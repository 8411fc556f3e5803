"""The git remote on the laptop and the checkout on the server: nothing from a setting runs as a git option,
credentials in a remote URL stay on the laptop, and a server sync stops rather than lose ignored files or
commits made on the server (security review findings 1, 3, 4, 8)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from berth.configuration.target import load_target
from berth.deploy.stages import sync as sync_stage
from berth.errors import BerthError, UsageError
from berth.model import git as gitlocal
from berth.remote.transport import Result
from tests.helpers import run_berth

TOKEN = "ghp_R3alT0kenR3alT0kenR3alT0ken0000"


def berth(project, sub_env, *args: str) -> subprocess.CompletedProcess:
    return run_berth("-C", str(project.root), *args, env=sub_env())


# --------------------------------------------------------------------------- finding 1: a remote read as an option

# hosts on a closed local port: should anything get as far as ssh, it fails at once instead of hanging
TOML_WITH_PAYLOAD = '[environments.staging]\nhosts = ["127.0.0.1"]\nport = 9\nremote = "{payload}"\n'


def _payload(project) -> tuple[str, Path]:
    flag = project.root.parent / "PWNED"
    return f"--upload-pack=touch {flag};:", flag


@pytest.mark.parametrize("args", [["check"], ["check", "--format", "json"], ["deploy", "--yes"],
                                  ["deploy", "--push", "--yes"]], ids=" ".join)
def test_a_committed_berth_toml_remote_never_runs_as_a_git_option(project, sub_env, args):
    # the review's repro: remote = "--upload-pack=CMD;:" in a committed berth.toml, then `berth check`
    payload, flag = _payload(project)
    project.write("berth.toml", TOML_WITH_PAYLOAD.format(payload=payload))
    project.commit("add berth.toml")
    proc = berth(project, sub_env, *args)
    assert not flag.exists(), "git ran the remote value as --upload-pack"
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    if "json" in args:
        import json

        found = [(f["rule"], f["file"], f["line"]) for f in json.loads(proc.stdout)["findings"]]
        assert ("settings.remote", "berth.toml", 4) in found
    else:
        assert "berth.toml:4: error: the git remote '--upload-pack=" in out and "[settings.remote]" in out
    assert "git.unpushed" not in out  # git was not asked about that remote at all


def test_a_dotenv_git_remote_never_runs_as_a_git_option(project, sub_env):
    payload, flag = _payload(project)
    project.write(".env", project.DOTENV + f"GIT_REMOTE={payload}\n")
    proc = berth(project, sub_env, "check")
    assert not flag.exists()
    assert proc.returncode == 1
    assert ".env:4: error: the git remote '--upload-pack=" in proc.stdout and "[settings.remote]" in proc.stdout


@pytest.mark.parametrize("args", [["rollback", "--yes"], ["doctor"]], ids=" ".join)
def test_commands_that_read_the_remote_themselves_refuse_it_before_any_host(project, sub_env, args):
    payload, flag = _payload(project)
    project.write(".env", project.DOTENV + f"GIT_REMOTE={payload}\n")
    proc = berth(project, sub_env, *args)
    assert not flag.exists()
    assert proc.returncode == 2, proc.stderr
    assert "would read it as an option" in proc.stderr and ".env:4 GIT_REMOTE" in proc.stderr
    assert "connect" not in proc.stdout


def test_remote_url_refuses_option_like_values_and_says_where_they_came_from(project):
    with pytest.raises(UsageError) as refused:
        gitlocal.remote_url(project.root, "--upload-pack=x", where="berth.toml:3 [environments.staging] remote")
    assert refused.value.where == "berth.toml:3 [environments.staging] remote" and refused.value.exit_code == 2
    project.write(".env", project.DOTENV + "GIT_REMOTE=-oops\n")
    with pytest.raises(UsageError) as refused:
        gitlocal.target_remote_url(load_target(project.root))
    assert refused.value.where == ".env:4 GIT_REMOTE"
    project.write(".env", project.DOTENV)
    project.git("config", "remote.origin.url", "--upload-pack=x")  # a URL in .git/config, too
    with pytest.raises(UsageError, match="would read it as an option"):
        gitlocal.target_remote_url(load_target(project.root))


def test_ls_remote_and_fetch_put_the_url_after_a_double_dash(project, monkeypatch):
    # with the refusal taken away, `--` alone keeps the URL out of git's options in is_pushed
    flag = project.root.parent / "PWNED"
    monkeypatch.setattr(gitlocal, "refuse_option_like", lambda value, where: None)
    with pytest.raises(gitlocal.GitError, match="strange pathname"):
        gitlocal.is_pushed(project.root, f"--upload-pack=touch {flag};:", "main", project.head())
    assert not flag.exists()


def test_push_puts_the_url_after_a_double_dash(project):
    from berth.deploy.gate import push_if_needed
    from berth.deploy.steplog import StepLog
    from berth.secrets.masking import Masker
    from berth.ui.output import StepPrinter

    flag = project.root.parent / "PWNED"
    project.write("new.txt", "x\n")
    head = project.commit("not pushed")
    log = StepLog(StepPrinter(Masker(), quiet=True))
    # is_pushed refuses such a URL; here the remote is ours and the push URL is the payload
    ctx = SimpleNamespace(remote_url=f"--receive-pack=touch {flag};:", branch="main", head=head)
    real_is_pushed = gitlocal.is_pushed
    try:
        gitlocal.is_pushed = lambda *a: (False, None)
        with pytest.raises(BerthError, match="git push to") as failed:
            push_if_needed(load_target(project.root), SimpleNamespace(context=ctx), log)
    finally:
        gitlocal.is_pushed = real_is_pushed
    assert not flag.exists()
    # git took the value as the repository (and refused it); without `--` it would have been an option,
    # and the refspec the repository (an ssh host named HEAD)
    assert "strange pathname '--receive-pack=" in failed.value.what
    assert "hostname head" not in failed.value.what.lower()


def test_local_git_calls_that_contact_a_remote_never_use_ext(project, tmp_path):
    flag = tmp_path / "PWNED"
    project.git("config", "protocol.allow", "always")  # even where the user's git config allows it
    with pytest.raises(gitlocal.GitError):
        gitlocal.is_pushed(project.root, f"ext::sh -c touch% {flag}", "main", project.head())
    assert not flag.exists()


# --------------------------------------------------------------------------- finding 8: credentials in the URL


@pytest.mark.parametrize("url, public, secrets", [
    (f"https://deploy:{TOKEN}@github.com/org/app.git", "https://github.com/org/app.git", [TOKEN]),
    (f"https://{TOKEN}@github.com/org/app.git", "https://github.com/org/app.git", [TOKEN]),  # token as the user
    ("https://oauth2:glpat-abcdefghij0123456789@gitlab.com/o/a.git", "https://gitlab.com/o/a.git",
     ["glpat-abcdefghij0123456789"]),
    ("https://alice@github.com/org/app.git", "https://github.com/org/app.git", []),  # a name: dropped, not secret
    ("https://u:p%40ss%3Aw0rd@host:8443/x.git", "https://host:8443/x.git", ["p%40ss%3Aw0rd", "p@ss:w0rd"]),
    ("https://u:p@ss@host/x.git", "https://host/x.git", ["p@ss"]),
    ("ssh://git:s3cret-pw@host:2222/org/app.git", "ssh://git@host:2222/org/app.git", ["s3cret-pw"]),
    ("ssh://git@host/org/app.git", "ssh://git@host/org/app.git", []),
    ("git@github.com:org/app.git", "git@github.com:org/app.git", []),
    ("/srv/git/app.git", "/srv/git/app.git", []),
    ("https://github.com/org/app.git", "https://github.com/org/app.git", []),
])
def test_url_credentials_and_public_url(url, public, secrets):
    assert gitlocal.public_url(url) == public
    assert gitlocal.url_credentials(url) == secrets
    for secret in secrets:
        assert secret not in public


def test_plan_shows_no_credentials(project, sub_env):
    # the review's repro: `berth plan | grep -c ghp_` was 4
    project.git("remote", "set-url", "origin", f"https://deploy:{TOKEN}@github.com/org/app.git")
    proc = berth(project, sub_env, "plan")
    out = proc.stdout + proc.stderr
    assert "ghp_" not in out and "deploy:ghp" not in out
    assert "git -c protocol.ext.allow=never clone -q -- https://github.com/org/app.git" in out
    assert "→ https://github.com/org/app.git" in out
    assert "git.remote-credentials" in out  # and the check says why


def test_plan_shows_no_credentials_from_git_remote_either(project, sub_env):
    project.write(".env", project.DOTENV + f"GIT_REMOTE=https://{TOKEN}@github.com/org/app.git\n")
    out = berth(project, sub_env, "plan").stdout
    assert "ghp_" not in out
    assert "remote       https://github.com/org/app.git  ← .env:4" in out


def test_check_warns_about_credentials_without_showing_them(project, sub_env):
    project.git("remote", "set-url", "origin", f"https://deploy:{TOKEN}@127.0.0.1:9/org/app.git")
    proc = berth(project, sub_env, "check")  # ls-remote fails at once (nothing listens on port 9)
    assert "ghp_" not in proc.stdout + proc.stderr
    assert "[git.remote-credentials]" in proc.stdout and "https://127.0.0.1:9/org/app.git" in proc.stdout


def test_git_errors_hide_the_credentials_of_the_url_they_were_given(project):
    with pytest.raises(gitlocal.GitError) as failed:
        gitlocal.git(project.root, "ls-remote", "--", f"https://deploy:{TOKEN}@127.0.0.1:9/org/app.git")
    assert TOKEN not in failed.value.what and "https://127.0.0.1:9/org/app.git" in failed.value.what


# --------------------------------------------------------------------------- findings 3 and 4: the sync stage


class LocalConn:
    """Runs the scripts a HostSession would send, here with sh (the 'server' is a temp dir)."""

    def __init__(self, env: dict):
        self.env = env
        self.scripts: list[str] = []

    def run(self, script: str, *, stdin: bytes | None = None, timeout: float | None = None, check: bool = False):
        self.scripts.append(script)
        proc = subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, env=self.env, timeout=120)
        return Result(script, proc.returncode, proc.stdout, proc.stderr, 0.0)


@pytest.fixture
def server(tmp_path, new_repo, run_git, sub_env):
    """A bare remote, the work repo pushing to it, and a session whose checkout is a temp dir."""
    remote = new_repo(tmp_path / "remote.git", bare=True)
    work = new_repo(tmp_path / "work")
    run_git(work, "remote", "add", "origin", str(remote))

    def commit(files: dict[str, str], message: str) -> str:
        for rel, text in files.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(text)
        run_git(work, "add", "-f", *files)
        run_git(work, "commit", "-q", "-m", message)
        run_git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
        return run_git(work, "rev-parse", "HEAD")

    app = tmp_path / "srv" / "app"
    session = SimpleNamespace(conn=LocalConn(sub_env()), app_dir=str(app),
                              host=SimpleNamespace(label="deploy@web-1"))
    return SimpleNamespace(remote=str(remote), work=work, commit=commit, app=app, session=session)


def test_sync_stage_stops_on_ignored_files_the_commit_would_overwrite(server, run_git):
    c1 = server.commit({".gitignore": "uploads/\n", "app.py": "v1\n"}, "c1")
    assert sync_stage.sync(server.session, server.remote, c1, None).cloned
    (server.app / "uploads").mkdir()
    (server.app / "uploads" / "avatar.png").write_bytes(b"PRECIOUS USER DATA")
    c2 = server.commit({"uploads/avatar.png": "placeholder from repo\n"}, "c2")
    with pytest.raises(BerthError) as stopped:
        sync_stage.sync(server.session, server.remote, c2, c1)
    err = stopped.value
    assert f"would be overwritten by commit {c2[:7]}" in err.what
    assert err.where == f"deploy@web-1:{server.app}"
    assert "move them out of the way" in err.fix and "stop ignoring them" in err.fix and "git rm --cached" in err.fix
    assert err.details.splitlines()[-1] == "uploads/avatar.png"
    assert (server.app / "uploads" / "avatar.png").read_bytes() == b"PRECIOUS USER DATA"
    assert run_git(server.app, "rev-parse", "HEAD") == c1


def test_sync_stage_stops_on_commits_made_on_the_server(server, run_git):
    c1 = server.commit({"app.py": "v1\n"}, "c1")
    sync_stage.sync(server.session, server.remote, c1, None)
    (server.app / "app.py").write_text("hotfix\n")
    run_git(server.app, "commit", "-qam", "hotfix on server")
    hotfix = run_git(server.app, "rev-parse", "HEAD")
    c2 = server.commit({"app.py": "v2\n"}, "c2")
    with pytest.raises(BerthError) as stopped:
        sync_stage.sync(server.session, server.remote, c2, c1)
    err = stopped.value
    assert "commits made on the server that no remote branch holds" in err.what and c1[:7] in err.what
    assert f"{hotfix[:7]} hotfix on server" in err.details
    assert "push them from the server to the remote" in err.fix
    assert f"git -C {server.app} checkout --detach {c1}" in err.fix
    assert run_git(server.app, "rev-parse", "HEAD") == hotfix
    # set aside as the fix says, the next deploy goes through
    run_git(server.app, "checkout", "-q", "--detach", c1)
    assert sync_stage.sync(server.session, server.remote, c2, c1).head == c2


def test_sync_stage_says_when_the_servers_origin_is_another_url(server, run_git, tmp_path):
    c1 = server.commit({"app.py": "v1\n"}, "c1")
    sync_stage.sync(server.session, server.remote, c1, None)
    mirror = tmp_path / "mirror.git"
    run_git(tmp_path, "clone", "-q", "--bare", server.remote, str(mirror))
    c2 = server.commit({"app.py": "v2\n"}, "c2")
    run_git(server.work, "push", "-q", str(mirror), "HEAD:refs/heads/main")
    synced = sync_stage.sync(server.session, str(mirror), c2, c1)
    assert synced.origin_differs and "origin is another URL and stays so" in synced.describe()
    assert run_git(server.app, "remote", "get-url", "origin") == server.remote


class _Stop(Exception):
    pass


def test_rollback_and_a_failed_pre_hook_tell_sync_which_commit_is_running(monkeypatch):
    from berth.deploy import rollback
    from berth.deploy.steplog import StepLog
    from berth.model.release import Release
    from berth.secrets.masking import Masker
    from berth.ui.output import StepPrinter

    seen = []

    def fake_sync(session, remote_url, commit, running):
        seen.append((commit, running))
        raise _Stop

    monkeypatch.setattr(sync_stage, "sync", fake_sync)
    running, older = "a" * 40, "b" * 40
    session = SimpleNamespace(current=Release(id="R2", commit=running), host=SimpleNamespace(label="web-1"))
    log = StepLog(StepPrinter(Masker(), quiet=True))
    with pytest.raises(_Stop):
        rollback.roll_back(session, log, {"id": "R1", "commit": older}, "/r.git", [], (), 1, ".env.docker")
    with pytest.raises(_Stop):
        rollback.restore_unstarted(session, session.current, "/r.git", ".env.docker")
    assert seen == [(older, running), (running, running)]
