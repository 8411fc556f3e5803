"""Differential tests: berth.model.compose.interpolation vs the real ``docker compose config``.

Successful cases are batched into one compose file per environment (one service whose
``environment:`` mapping has one key per case). Cases where our implementation raises
are checked one compose invocation each, because compose stops at the first error.
Skipped when ``docker compose`` is not available (no daemon is needed for ``config``).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from berth.model.compose.interpolation import InterpolationError, MissingRequiredVariable, interpolate
from tests.helpers import compose_available

if not compose_available():
    pytest.skip(
        "`docker compose version` failed; Compose v2 not available", allow_module_level=True
    )


SEED = 20240611
CASES_PER_BATCH = 1500
BATCHES = 4
MAX_RANDOM_ERROR_CASES = 50

# Names compose itself injects into the interpolation environment (PWD,
# COMPOSE_PROJECT_NAME) or that we must pass (PATH, HOME) are deliberately absent.
POOL = ["A", "B", "C", "D", "a", "b", "ab", "AB", "Ab", "_", "_1", "x_y", "Var9", "LONG_NAME_12"]
# Fixed-state variables present in every environment, used by the corner cases.
FIXED = {"SET": "val", "EMPTY": "", "DOLLAR": "a$b", "BR": "}{", "SP": " s p "}
VALUE_CHARS = "abcXYZ019 $${}:-?+_/=#\"\\é"
LIT_CHARS = [
    "a", "b", "X", " ", "-", ":", "?", "+", "_", "1", "é", "/", "=", "#", '"', "'", "\\", "\t",
    "{", "}",
]
OPS = [":-", "-", ":?", "?", ":+", "+"]
JUNK = ["$", "$ ", "$-", "$1", "$.", "${", "$}", "}", "{", "$$$", "${}", "$:", "\n"]

CORNERS = [
    "", "plain", "$", "a$", "$ x", "$-x", "$1", "$9SET", "$.SET", "$}", "$:", "$$", "$$SET",
    "$$$SET", "$$$$", "$${SET}", "$${", "$$$", "${SET}$", "$SETX", "$SET-x", "$SET:-x",
    "$UNSET:-x", "$SET}", "$Set|$set|$SET", "${_}|$_|${_a1}|$__9",
    "$\u212a|$\u017f|${\u017f:-z}", "$\u0131|$\u0130|$\u00e9",
    "${SET:-d}", "${EMPTY:-d}", "${UNSET:-d}", "${SET-d}", "${EMPTY-d}", "${UNSET-d}",
    "${SET:+a}", "${EMPTY:+a}", "${UNSET:+a}", "${SET+a}", "${EMPTY+a}", "${UNSET+a}",
    "${SET:?m}", "${SET?m}", "${EMPTY?m}", "${SET:-}", "${UNSET:-}", "${SET+}", "${EMPTY+}",
    "${UNSET:-${SET:-x}}", "${UNSET:-${EMPTY:-x}}", "${UNSET:-${EMPTY-x}}",
    "${UNSET:-a${UNSET:-b${SET}c}d}", "${SET:+<${SET}>}", "${UNSET:-${U2:-${U3:-deep}}}",
    "${UNSET:-x:?y}", "${UNSET-x:?y}", "${UNSET-x:-y}", "${EMPTY-x:-y}", "${SET:+x-y}",
    "${SET+:-}", "${SET:+?}", "${UNSET:-?}", "${UNSET-+}", "${SET?-x}", "${EMPTY?-x}",
    "${UNSET:-x}}", "${UNSET:-}}}", "${UNSET-x}}${UNSET-y}", "${UNSET:-x} and }",
    "${UNSET:-{x}}", "${UNSET:-{x} ${SET}}", "${UNSET:-a{b{c}}}", "${UNSET:-x{}y}",
    "${UNSET:-{}", "${UNSET:-{}}", "${UNSET:-}{}", "$SET\n${UNSET:-}", "${UNSET:-x}\n}",
    "${UNSET:-a}\r", "${UNSET:-a\rb}", "${UNSET:-a\u2028b}", "${UNSET:-\ta\t}",
    "$DOLLAR ${BR} [$SP]", "${UNSET:-$DOLLAR}", "${UNSET:-$$}",
    "${UNSET:-$${x}", "${UNSET:-$}", "${SET:-$$}", "${UNSET:-${BR}}",
    # errors (checked one by one)
    "${}", "${", "x${", "${A", "a ${A", "${A B}", "${ A}", "${A }", "${-x}", "${:-x}",
    "${1}", "${A:x}", "${A::-x}", "${A.B}", "${A[0]}", "${A:-x", "${A:-x\n}", "${\u00e9}",
    "${SET}${", "$${}${}", "${UNSET:-${}}", "${UNSET:-${A}", "${SET:-${}}",
    "${UNSET:?m}", "${EMPTY:?m}", "${UNSET?m}", "${UNSET:?}", "${UNSET?need $SET and ${SP}}",
    "${SET:-${UNSET:?boom}}", "${UNSET:+${UNSET:?x}}", "${UNSET:?m} ${}", "${} ${UNSET:?m}",
    "${UNSET:?${}}", "${UNSET?x:-y}", "${UNSET:?-x}",
]


def _gen_value(rng: random.Random) -> str:
    value = "".join(rng.choice(VALUE_CHARS) for _ in range(rng.randint(1, 6)))
    # inside single quotes a backslash is literal, except that "\'" would not close the quote
    return value + "z" if value.endswith("\\") else value


def _gen_env(rng: random.Random) -> dict[str, str]:
    env = dict(FIXED)
    for name in POOL:
        r = rng.random()
        if r < 0.3:
            continue  # unset
        env[name] = "" if r < 0.55 else _gen_value(rng)
    return env


def _gen_template(rng: random.Random, depth: int = 0) -> str:
    count = rng.randint(0, 2) if depth else rng.randint(1, 4)
    return "".join(_gen_piece(rng, depth) for _ in range(count))


def _gen_piece(rng: random.Random, depth: int) -> str:
    name = rng.choice(POOL + ["SET", "EMPTY", "UNSET"])
    r = rng.random()
    if r < 0.22:
        return "".join(rng.choice(LIT_CHARS) for _ in range(rng.randint(1, 3)))
    if r < 0.30:
        return "$$"
    if r < 0.42:
        return "$" + name
    if r < 0.52:
        return "${" + name + "}"
    if r < 0.93 and depth < 3:
        return "${" + name + rng.choice(OPS) + _gen_template(rng, depth + 1) + "}"
    return rng.choice(JUNK)


def _expect(template: str, env: dict[str, str]):
    try:
        return interpolate(template, env)
    except (InterpolationError, MissingRequiredVariable) as exc:
        return exc


def _env_file_text(env: dict[str, str]) -> str:
    # Single quotes make compose's dotenv parser take the value literally.
    for value in env.values():
        assert "'" not in value and "\n" not in value and not value.endswith("\\")
    return "".join(f"{k}='{v}'\n" for k, v in env.items())


def _run_compose(
    workdir: Path, env: dict[str, str], values: dict[str, str]
) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    compose_file = workdir / "compose.json"
    env_file = workdir / "vars.env"
    model = {"services": {"s": {"image": "busybox", "environment": values}}}
    compose_file.write_text(json.dumps(model, ensure_ascii=False), encoding="utf-8")
    env_file.write_text(_env_file_text(env), encoding="utf-8")
    # Nothing from the caller's environment may leak into interpolation.
    clean_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(workdir)),
    }
    return subprocess.run(
        ["docker", "compose", "-f", str(compose_file), "--env-file", str(env_file),
         "--project-name", "x", "config", "--format", "json"],
        cwd=workdir, env=clean_env, capture_output=True, text=True, timeout=120, check=False,
    )


def _unescape(value: str) -> str:
    # `docker compose config` writes every '$' of the result as '$$'.
    assert value.replace("$$", "").count("$") == 0, value
    return value.replace("$$", "$")


def _make_batches():
    rng = random.Random(SEED)
    batches = []
    for _ in range(BATCHES):
        env = _gen_env(rng)
        templates = CORNERS + [_gen_template(rng) for _ in range(CASES_PER_BATCH)]
        batches.append((env, templates))
    return batches


BATCH_DATA = _make_batches()


def test_successful_cases_match_docker_compose(tmp_path):
    started = time.monotonic()
    total = 0
    mismatches = []
    for index, (env, templates) in enumerate(BATCH_DATA):
        ok = {}
        for i, template in enumerate(templates):
            expected = _expect(template, env)
            if isinstance(expected, str):
                ok[f"C{i:04d}"] = (template, expected)
        assert len(ok) > CASES_PER_BATCH // 3, "generator produces too few valid cases"
        proc = _run_compose(tmp_path / f"batch{index}", env, {k: t for k, (t, _) in ok.items()})
        if proc.returncode != 0:
            # compose names the offending key ("... services.s.environment.C0123 ...")
            match = re.search(r"services\.s\.environment\.(C\d{4})", proc.stderr)
            culprit = ok[match.group(1)] if match else None
            pytest.fail(
                f"compose rejected a case we interpolate: (template, ours) = {culprit!r}\n"
                f"env={env!r}\n{proc.stderr}"
            )
        actual = json.loads(proc.stdout)["services"]["s"]["environment"]
        for key, (template, expected) in ok.items():
            got = _unescape(actual[key])
            if got != expected:
                mismatches.append((template, env, expected, got))
        total += len(ok)
    elapsed = time.monotonic() - started
    print(f"\n[differential] {total} successful cases in {BATCHES} compose runs, {elapsed:.2f}s")
    assert not mismatches, "\n".join(
        f"template={t!r} ours={e!r} compose={g!r}" for t, _, e, g in mismatches[:25]
    ) + f"\n({len(mismatches)} mismatches)"


def _error_cases():
    cases = []
    env0 = BATCH_DATA[0][0]
    for template in CORNERS:
        expected = _expect(template, env0)
        if isinstance(expected, Exception):
            cases.append((template, env0, expected))
    random_errors = []
    for env, templates in BATCH_DATA:
        for template in templates[len(CORNERS):]:
            expected = _expect(template, env)
            if isinstance(expected, Exception):
                random_errors.append((template, env, expected))
    rng = random.Random(SEED + 1)
    rng.shuffle(random_errors)
    # keep both kinds of errors among the random ones
    missing = [c for c in random_errors if isinstance(c[2], MissingRequiredVariable)]
    invalid = [c for c in random_errors if isinstance(c[2], InterpolationError)]
    half = MAX_RANDOM_ERROR_CASES // 2
    cases += missing[:half] + invalid[: MAX_RANDOM_ERROR_CASES - min(half, len(missing))]
    return cases


def test_error_cases_match_docker_compose(tmp_path):
    started = time.monotonic()
    cases = _error_cases()
    assert any(isinstance(c[2], MissingRequiredVariable) for c in cases)
    assert any(isinstance(c[2], InterpolationError) for c in cases)

    def check(item):
        n, (template, env, expected) = item
        proc = _run_compose(tmp_path / f"err{n}", env, {"K": template})
        if proc.returncode == 0:
            return f"template={template!r}: we raise {expected!r}, compose accepted it: {proc.stdout[-300:]}"
        if isinstance(expected, MissingRequiredVariable):
            line = f"error while interpolating services.s.environment.K: {expected}"
            if line not in proc.stderr:
                return f"template={template!r}: we raise {str(expected)!r}, compose said {proc.stderr!r}"
        elif "invalid interpolation format for services.s.environment.K" not in proc.stderr:
            return f"template={template!r}: we raise InterpolationError, compose said {proc.stderr!r}"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        failures = [f for f in pool.map(check, enumerate(cases)) if f]
    elapsed = time.monotonic() - started
    print(f"\n[differential] {len(cases)} error cases, one compose run each, {elapsed:.2f}s")
    assert not failures, "\n".join(failures[:25]) + f"\n({len(failures)} failures)"
