"""Secrets committed to the repository: known key formats, and random-looking values assigned to
secret-looking names, in every file git tracks.

Detection works as gitleaks' does — keyword prefilter, then a regex, then a Shannon-entropy
threshold — with formats taken from gitleaks' default rules (aws-access-token, github-pat,
github-fine-grained-pat, slack-*-token, stripe-access-token, openai-api-key, private-key,
generic-api-key):

1. prefilter: one `git grep -I -i -E` over the tracked files (C, multi-threaded; binary files are
   skipped by git) returns only the lines holding a keyword such as `ghp_`, `akia`, `-----begin` or a
   secret-looking name followed by `=`/`:`. Nothing else is read.
2. regex: each candidate line goes through the precise patterns of the detectors whose keywords
   it contains.
3. entropy: the match must look random (bits per character) and not be a placeholder
   (`sk-your-key-here`, `xxxx`, `change_me`, `...EXAMPLE`). A private key instead must be whole
   (BEGIN line, base64 body, END line), as gitleaks' private-key rule requires.

Files over 1 MiB are skipped. The real env files (.env, .env.docker) are ignored by git, so they are
not scanned: that is where secrets belong. Findings never contain the secret: at most the fixed,
public prefix of its format (`sk-proj-…`, `ghp_…`). `# berth: allow-secret` on the line (or on a
comment line above it) silences a finding — applied centrally by run_checks.
"""

from __future__ import annotations

import functools
import math
import os
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from berth.check.findings import Severity, finding, rule
from berth.model import git as gitlocal
from berth.secrets.masking import is_secret_key, token_format

MAX_FILE_BYTES = 1024 * 1024
ROTATE = ("rotate it now (it stays in git history after you delete it), then remove it from the file and load it "
          "from the ignored env file instead")
ALLOW = "for a test fixture, add `# berth: allow-secret` on the line"
MAX_GENERIC_LINE = 10_000  # minified bundles: the generic pattern is not worth its cost on megabyte lines
PLACEHOLDER_WORDS = ("example", "xxxx", "your", "placeholder", "change", "dummy", "sample", "fake", "redacted",
                     "replace", "insert", "here", "todo", "fixme", "<", ">", "...", "****")


class Detector(NamedTuple):
    rule: str
    kind: str  # "an OpenAI API key"
    keywords: tuple[str, ...]  # lowercase; the line must contain one of them
    source: str  # the regex; compiled the first time a line holds a keyword (most checks never need most of them)
    entropy: float  # minimum Shannon entropy (bits per character) of the match
    shown: Callable[[str], str]  # the public part of the match that may be printed

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compiled(self.source)


@functools.cache
def _compiled(source: str) -> re.Pattern[str]:
    return re.compile(source)


def _prefix(*prefixes: str) -> Callable[[str], str]:
    def shown(token: str) -> str:
        for p in sorted(prefixes, key=len, reverse=True):
            if token.startswith(p):
                return p
        return ""
    return shown


def _detector(rule: str, kind: str, fmt: str, shown: Callable[[str], str]) -> Detector:
    """A detector for one of berth.secrets.masking' token formats (shared with the masker, which treats env values in
    these formats as secrets whatever their keys are called)."""
    f = token_format(fmt)
    return Detector(rule, kind, f.keywords, f.source, 3.0, shown)


DETECTORS: tuple[Detector, ...] = (
    _detector("secrets.aws-access-key", "an AWS access key id", "aws-access-key", lambda t: t[:4]),
    _detector("secrets.github-token", "a GitHub token", "github-token",
              _prefix("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    _detector("secrets.slack-token", "a Slack token", "slack-token", lambda t: t[:5]),
    _detector("secrets.stripe-key", "a Stripe live key", "stripe-key", _prefix("sk_live_", "rk_live_")),
    _detector("secrets.openai-key", "an OpenAI API key", "openai-key",
              _prefix("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-")),
)

PRIVATE_KEY = token_format("private-key").source  # the BEGIN line, as the masker knows it
PRIVATE_KEY_END = r"-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
# one line of a key's base64 body, once indentation, quotes and a literal \n are taken off
PRIVATE_KEY_BODY_LINE = r"[A-Za-z0-9+/]+={0,2}"
PRIVATE_KEY_MIN_BODY = 64  # base64 characters; the smallest key (ed25519, OpenSSH format) has ~400
PRIVATE_KEY_MAX_LINES = 400  # an 8192-bit RSA key is ~100 lines; with blank lines and headers, well under

# name = value, name: value, "name": "value", name := value, name => value
GENERIC = (
    r"(?P<name>[A-Za-z_][A-Za-z0-9_.-]{0,80})[\"']?[ \t]*(?::=|=>|=|:)[ \t]*(?P<q>[\"'`]?)"
    r"(?P<value>[A-Za-z0-9_+/=.~-]{12,256})(?=$|[\"'`\s;,)}\]])")
# SECRET_KEY_FILE, tokenUrl, api_key_id: the last word says the value is not the secret itself
NOT_SECRET_LAST_WORDS = frozenset(
    "id ids file path dir url uri name user username type version ref hash length size format enabled header "
    "field env var prefix suffix algorithm alg method mode count ttl timeout expiry expires".split())
NAME_WORDS = r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])"
GENERIC_ENTROPY = 3.5

# the prefilter, as POSIX extended regexes for `git grep -i -E` (one call for every detector)
GREP_PATTERNS = (
    r"-----begin[ a-z0-9_-]*private key",
    r"(a3t[a-z0-9]|akia|asia|abia|acca)[a-z0-9]{16}",
    r"(ghp|gho|ghu|ghs|ghr)_[a-z0-9]{36}",
    r"github_pat_",
    r"xox[baprs]-",
    r"[sr]k_live_",
    r"sk-[a-z0-9_-]{20}",
    "(secret|token|pwd|key|auth|credential|private|salt|dsn|pass)[a-z0-9_.-]*[\"']?[[:space:]]*(:=|=>|=|:)"
    "[[:space:]]*[\"'`]?[a-z0-9_+/=.~-]{12}",
)


class Hit(NamedTuple):
    rule: str
    path: str  # relative to the project root
    line: int
    col: int
    message: str


def shannon_entropy(text: str) -> float:
    """Bits per character, as gitleaks computes it."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def is_placeholder(value: str) -> bool:
    low = value.lower()
    if any(word in low for word in PLACEHOLDER_WORDS):
        return True
    return len(set(low.strip("-_.=/"))) <= 3  # xxxxxxxx, 000000, ----


def scan_text_line(path: str, lineno: int, text: str, read_file: Callable[[], str | None]) -> Iterator[Hit]:
    """Every finding on one candidate line (the heart of the scan; `read_file` is for multi-line keys)."""
    if lineno == 1 and text.startswith("\ufeff"):
        text = text[1:]
    low = text.lower()
    taken: list[tuple[int, int]] = []
    for det in DETECTORS:
        if not any(k in low for k in det.keywords):
            continue
        for m in det.pattern.finditer(text):
            token = m.group(0)
            public = det.shown(token)
            if token.endswith("EXAMPLE") or is_placeholder(token[len(public):]) or shannon_entropy(token) < det.entropy:
                continue
            taken.append(m.span())
            yield Hit(det.rule, path, lineno, m.start() + 1,
                      f"{path} contains {det.kind} ({public}…, {len(token)} characters)")
    if "-----begin" in low:
        for m in _compiled(PRIVATE_KEY).finditer(text):
            if _private_key_body(text, m, lineno, read_file):
                taken.append(m.span())
                yield Hit("secrets.private-key", path, lineno, m.start() + 1,
                          f"{path} contains a private key ({m.group(0).strip('-')})")
    if len(text) > MAX_GENERIC_LINE:
        return
    for m in _compiled(GENERIC).finditer(text):
        name, value = m.group("name"), m.group("value")
        start = m.start("value")
        if any(a <= start < b for a, b in taken):
            continue
        if not is_secret_key(name.strip(".-")) or _last_word(name) in NOT_SECRET_LAST_WORDS:
            continue
        if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
            continue  # words_with_underscores, plain numbers: not a random token
        if value.startswith(("/", "./", "~")) or "://" in value or is_placeholder(value):
            continue
        entropy = shannon_entropy(value)
        if entropy < GENERIC_ENTROPY:
            continue
        yield Hit("secrets.generic-token", path, lineno, start + 1,
                  f"{path}: {name} is assigned a literal that looks like a secret "
                  f"({len(value)} characters, {entropy:.1f} bits of entropy per character)")


def _last_word(name: str) -> str:
    words = _compiled(NAME_WORDS).findall(name)
    return words[-1].lower() if words else ""


def _private_key_body(text: str, m: re.Match[str], lineno: int, read_file: Callable[[], str | None]) -> bool:
    """Is the BEGIN line at `m` the start of a whole key: a base64 body of at least PRIVATE_KEY_MIN_BODY
    characters, then an END line? A BEGIN line alone is not a key (code that looks for keys has one), nor is
    a documentation example with "..." for the body.

    No entropy test: the first body line of an OpenSSH key is a fixed header (b3BlbnNzaC1rZXktdjE =
    "openssh-key-v1", then the cipher and the key type), the same for every unencrypted ed25519 key.
    """
    after = text[m.end():]
    if not _compiled(PRIVATE_KEY_END).search(after.replace("\\n", "\n")):  # not all on this line (as in JSON)
        whole = read_file()
        if whole is None:
            return False
        lines = whole.splitlines()
        after += "\n" + "\n".join(lines[lineno:lineno + PRIVATE_KEY_MAX_LINES])
    after = after.replace("\\n", "\n")  # a key in a JSON string or a one-line env value
    end = _compiled(PRIVATE_KEY_END).search(after)
    if end is None or _compiled(PRIVATE_KEY).search(after, 0, end.start()):
        return False  # no END, or another BEGIN first: this one only names the header
    body = 0
    for line in after[:end.start()].split("\n"):
        # indentation (YAML block scalars), quotes and concatenation (a key written in code), a trailing \
        # (a '+' is base64 too: a bare line ending in one is kept whole, else one key in 64 was missed)
        for word in (line.strip().strip("\"'`,;\\").strip(), line.strip().strip("\"'`,;+\\").strip()):
            if _compiled(PRIVATE_KEY_BODY_LINE).fullmatch(word):
                body += len(word)
                break
    return body >= PRIVATE_KEY_MIN_BODY


def git_bytes(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run git and keep its output as bytes: file contents and names need not be UTF-8."""
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=timeout,
                              env=gitlocal._git_env(), stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise gitlocal.GitError("git is not installed", fix="install git (apt-get install git)") from None
    except subprocess.TimeoutExpired:
        raise gitlocal.GitError(f"`git {args[0]}` did not finish within {timeout:.0f}s", where=str(root)) from None


# Prefetch: run_checks starts the few slow git commands (this grep, git.env-in-history's log) before the
# rules run, so they work while the other rules parse YAML and env files; the rule then collects the
# result. A command nobody collected (its rule skipped or another rule raised) is killed at the end.


def start_git(ctx, key: str, *args: str) -> None:
    jobs = ctx.__dict__.setdefault("_berth_git_jobs", {})
    if key in jobs:
        return
    try:
        jobs[key] = (args, subprocess.Popen(["git", "-C", str(ctx.root), *args], stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                            env=gitlocal._git_env()))
    except OSError:
        pass  # finish_git runs it again and reports the problem


def finish_git(ctx, key: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """The result of a prefetched git command with these args, or of running it now."""
    job = ctx.__dict__.get("_berth_git_jobs", {}).pop(key, None)
    if job is None or job[0] != args:
        if job is not None:
            _kill(job[1])
        return git_bytes(ctx.root, *args, timeout=timeout)
    proc = job[1]
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise gitlocal.GitError(f"`git {args[0]}` did not finish within {timeout:.0f}s", where=str(ctx.root)) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def discard_git_jobs(ctx) -> None:
    for _, proc in ctx.__dict__.pop("_berth_git_jobs", {}).values():
        _kill(proc)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def grep_args() -> list[str]:
    args = ["grep", "-I", "-n", "-z", "-i", "-E", "--no-color"]
    for pattern in GREP_PATTERNS:
        args += ["-e", pattern]
    return [*args, "--"]


def prefetch(ctx) -> None:
    start_git(ctx, "secrets", *grep_args())


def scan_repository(root: Path, ctx=None) -> list[Hit]:
    """One `git grep` over the tracked files (the keyword prefilter), then regex and entropy per line."""
    proc = finish_git(ctx, "secrets", *grep_args()) if ctx is not None else git_bytes(root, *grep_args())
    if proc.returncode not in (0, 1):
        raise gitlocal.GitError("cannot scan the tracked files for secrets: "
                                + proc.stderr.decode(errors="replace").strip(), where=str(root))
    hits: list[Hit] = []
    sizes: dict[str, int] = {}
    texts: dict[str, str | None] = {}

    def reader(rel: str) -> Callable[[], str | None]:
        def read() -> str | None:
            from berth.errors import UsageError
            from berth.model.files import read_bytes

            if rel not in texts:
                try:  # a tracked symlink may point at a FIFO or a device
                    texts[rel] = read_bytes(root / rel, limit=MAX_FILE_BYTES).decode("utf-8", errors="replace")
                except UsageError:
                    texts[rel] = None
            return texts[rel]
        return read

    for record in proc.stdout.split(b"\n"):
        parts = record.split(b"\0", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        rel, lineno = os.fsdecode(parts[0]), int(parts[1])
        text = parts[2].rstrip(b"\r").decode("utf-8", errors="replace")
        if rel not in sizes:
            try:
                sizes[rel] = os.stat(root / rel).st_size
            except OSError:
                sizes[rel] = MAX_FILE_BYTES + 1
        if sizes[rel] > MAX_FILE_BYTES:
            continue
        hits.extend(scan_text_line(rel, lineno, text, reader(rel)))
    return hits


def _hits(ctx) -> list[Hit]:
    """The scan runs once per check, whichever secrets rule asks first."""
    cached = ctx.__dict__.get("_berth_secret_hits")
    if cached is None:
        cached = scan_repository(ctx.root, ctx) if ctx.is_git_repo and ctx.tracked else []
        ctx.__dict__["_berth_secret_hits"] = cached
    return cached


def _report(ctx, rule_id: str):
    for hit in _hits(ctx):
        if hit.rule == rule_id:
            yield finding(hit.message, ctx.root / hit.path, hit.line, hit.col)


@rule("secrets.private-key", Severity.ERROR, "a private key (-----BEGIN ... PRIVATE KEY-----) is committed",
      "generate a new key pair and retire this one (it stays in git history after you delete it), remove the file "
      "from the repository and keep keys outside git; " + ALLOW)
def private_key(ctx):
    yield from _report(ctx, "secrets.private-key")


@rule("secrets.aws-access-key", Severity.ERROR, "an AWS access key id (AKIA..., ASIA...) is committed",
      "deactivate the key in AWS IAM and create a new one; " + ROTATE + "; " + ALLOW)
def aws_access_key(ctx):
    yield from _report(ctx, "secrets.aws-access-key")


@rule("secrets.github-token", Severity.ERROR, "a GitHub token (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_) is committed",
      "revoke the token in GitHub settings (Developer settings → tokens); " + ROTATE + "; " + ALLOW)
def github_token(ctx):
    yield from _report(ctx, "secrets.github-token")


@rule("secrets.slack-token", Severity.ERROR, "a Slack token (xoxb-, xoxp-, xoxa-, xoxr-, xoxs-) is committed",
      "revoke the token in the Slack app's settings; " + ROTATE + "; " + ALLOW)
def slack_token(ctx):
    yield from _report(ctx, "secrets.slack-token")


@rule("secrets.stripe-key", Severity.ERROR, "a Stripe live secret or restricted key (sk_live_, rk_live_) is committed",
      "roll the key in the Stripe dashboard; " + ROTATE + "; " + ALLOW)
def stripe_key(ctx):
    yield from _report(ctx, "secrets.stripe-key")


@rule("secrets.openai-key", Severity.ERROR, "an OpenAI API key (sk-..., sk-proj-...) is committed",
      "revoke the key in the OpenAI dashboard; " + ROTATE + "; " + ALLOW)
def openai_key(ctx):
    yield from _report(ctx, "secrets.openai-key")


@rule("secrets.generic-token", Severity.WARNING,
      "a random-looking literal is assigned to a secret-looking name (PASSWORD, TOKEN, *_KEY...) in a tracked file",
      "if it is a real secret: " + ROTATE + "; if it is not, add `# berth: allow-secret` on the line")
def generic_token(ctx):
    yield from _report(ctx, "secrets.generic-token")
