"""Unit tests for berth.model.compose.interpolation (compose-go compatible interpolation)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.model.compose.interpolation import InterpolationError, MissingRequiredVariable, VarRef, find_references, interpolate

# Variable states used throughout: SET is non-empty, EMPTY is set but "", UNSET is absent.
ENV = {"SET": "val", "EMPTY": "", "OTHER": "o", "MSG": "from-env", "DOLLAR": "a$b", "BR": "}{"}


class AllSet(Mapping):
    """Every variable name is set to "v"."""

    def __getitem__(self, key: str) -> str:
        return "v"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _missing(text: str, env: Mapping[str, str] = ENV) -> MissingRequiredVariable:
    with pytest.raises(MissingRequiredVariable) as info:
        interpolate(text, env)
    return info.value


# ---------------------------------------------------------------------------
# Operators x variable state
# ---------------------------------------------------------------------------

OPERATOR_TABLE = [
    # (template, expected when SET="val", expected when EMPTY, expected when UNSET);
    # None means MissingRequiredVariable.
    ("$V", "val", "", ""),
    ("${V}", "val", "", ""),
    ("${V:-d}", "val", "d", "d"),
    ("${V-d}", "val", "", "d"),
    ("${V:+a}", "a", "", ""),
    ("${V+a}", "a", "a", ""),
    ("${V:?m}", "val", None, None),
    ("${V?m}", "val", "", None),
]


@pytest.mark.parametrize("template,when_set,when_empty,when_unset", OPERATOR_TABLE)
@pytest.mark.parametrize("state", ["set", "empty", "unset"])
def test_operator_by_state(template, when_set, when_empty, when_unset, state):
    env = {"set": {"V": "val"}, "empty": {"V": ""}, "unset": {}}[state]
    expected = {"set": when_set, "empty": when_empty, "unset": when_unset}[state]
    if expected is None:
        err = _missing(template, env)
        assert err.name == "V"
        assert err.message == "m"
    else:
        assert interpolate(template, env) == expected


@pytest.mark.parametrize(
    "template,expected",
    [
        ("plain text", "plain text"),
        ("", ""),
        ("x${SET}y", "xvaly"),
        ("$SET$SET", "valval"),
        ("${SET}${EMPTY}${UNSET}|", "val|"),
        ("${SET:-}", "val"),
        ("${UNSET:-}", ""),
        ("${UNSET-}", ""),
        ("${SET:+}", ""),
        ("${SET+}", ""),
        ("${EMPTY+}", ""),
        ("${UNSET:-a b  c}", "a b  c"),
        ("${UNSET:-${SET}}", "val"),
        # values are inserted literally, never re-interpolated
        ("$DOLLAR ${BR}", "a$b }{"),
        ("${UNSET:-$DOLLAR}", "a$b"),
        # lower-case and mixed-case names are fine and case-sensitive
        ("${set-lower}", "lower"),
        ("$Set|$set|$SET", "||val"),
        ("${_}|$_|${_a1}|$__9", "|||"),
    ],
)
def test_basic_substitution(template, expected):
    assert interpolate(template, ENV) == expected


# ---------------------------------------------------------------------------
# $ handling: escapes, lone dollars, name boundaries
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template,expected",
    [
        ("$$", "$"),
        ("$$SET", "$SET"),
        ("$$$SET", "$val"),
        ("$$$$", "$$"),
        ("$${SET}", "${SET}"),
        ("$${", "${"),
        ("$${}", "${}"),
        ("${UNSET:-$$}", "$"),
        ("${UNSET:-$${x}", "${x"),
        # a '$' not followed by '$', '{' or a name character is kept literally
        ("$", "$"),
        ("a$", "a$"),
        ("$ x", "$ x"),
        ("$-x", "$-x"),
        ("$1", "$1"),
        ("$9SET", "$9SET"),
        ("$.SET", "$.SET"),
        ("$}", "$}"),
        ("$:", "$:"),
        ("${SET}$", "val$"),
        ("$$$", "$$"),
        ("${UNSET:-$}", "$"),
        # a named reference takes the longest run of name characters, no operators
        ("$SETX", ""),
        ("$SET-x", "val-x"),
        ("$SET:-x", "val:-x"),
        ("$UNSET:-x", ":-x"),
        ("$SET.x", "val.x"),
        ("$SET}", "val}"),
        # Go's (?i) folding admits U+212A KELVIN SIGN and U+017F LONG S, nothing else
        ("$\u212a|$\u017f|${\u017f:-z}", "||z"),
        ("$\u0131|$\u0130|$\u00e9", "$\u0131|$\u0130|$\u00e9"),
    ],
)
def test_dollar_handling(template, expected):
    assert interpolate(template, ENV) == expected


# ---------------------------------------------------------------------------
# Nesting, first-operator-wins, compose-go brace quirks, line breaks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template,expected",
    [
        ("${UNSET:-${OTHER:-x}}", "o"),
        ("${UNSET:-${EMPTY:-x}}", "x"),
        ("${UNSET:-${EMPTY-x}}", ""),
        ("${SET:-${OTHER:-x}}", "val"),
        ("${UNSET:-a${UNSET:-b${OTHER}c}d}", "abocd"),
        ("${SET:+<${OTHER}>}", "<o>"),
        ("${SET:+${UNSET:-${OTHER}}}", "o"),
        ("${UNSET:-${UNSET2:-${UNSET3:-deep}}}", "deep"),
        ("${UNSET:-x}${UNSET:-y}", "xy"),
        ("${UNSET:-x} and ${OTHER-z}", "x and o"),
    ],
)
def test_nested(template, expected):
    assert interpolate(template, ENV) == expected


@pytest.mark.parametrize(
    "template,expected",
    [
        ("${UNSET:-x:?y}", "x:?y"),
        ("${UNSET-x:?y}", "x:?y"),
        ("${UNSET-x:-y}", "x:-y"),
        ("${EMPTY-x:-y}", ""),
        ("${SET:+x-y}", "x-y"),
        ("${SET+:-}", ":-"),
        ("${SET:+?}", "?"),
        ("${UNSET:-?}", "?"),
        ("${UNSET-+}", "+"),
        ("${SET?-x}", "val"),
        ("${EMPTY?-x}", ""),
    ],
)
def test_first_operator_wins(template, expected):
    assert interpolate(template, ENV) == expected


def test_first_operator_wins_for_required_message():
    err = _missing("${UNSET?x:-y}")
    assert (err.name, err.message) == ("UNSET", "x:-y")
    err = _missing("${UNSET:?-x}")
    assert (err.name, err.message) == ("UNSET", "-x")


@pytest.mark.parametrize(
    "template,expected",
    [
        # the reference ends at the first "balanced" '}', the rest is ordinary text
        ("${UNSET:-x}}", "x}"),
        ("${UNSET:-}}}", "}}"),
        ("${UNSET-x}}${UNSET-y}", "x}y"),
        ("${UNSET:-x} and }", "x and }"),
        # every '{' counts as an opener, so braces in an argument nest ...
        ("${UNSET:-{x}}", "{x}"),
        ("${UNSET:-{x} ${OTHER}}", "{x} o"),
        ("${UNSET:-a{b{c}}}", "a{b{c}}"),
        # ... and the character right after a '{' is skipped by the brace counter
        ("${UNSET:-x{}y}", "x{}y"),
        ("${UNSET:-{}", "{"),
        ("${UNSET:-{}}", "{}"),
        # an argument never spans a line break; the line break is literal text
        ("$SET\n${UNSET:-}", "val\n"),
        ("${UNSET:-x}\n}", "x\n}"),
        ("${UNSET:-a}\r", "a\r"),
    ],
)
def test_brace_quirks(template, expected):
    assert interpolate(template, ENV) == expected


# ---------------------------------------------------------------------------
# Required variables
# ---------------------------------------------------------------------------


def test_required_error_attributes_and_message():
    err = _missing("x ${UNSET:?please set UNSET} y")
    assert err.name == "UNSET"
    assert err.message == "please set UNSET"
    assert str(err) == "required variable UNSET is missing a value: please set UNSET"
    assert isinstance(err, ValueError)


@pytest.mark.parametrize("template", ["${UNSET:?}", "${UNSET?}", "${EMPTY:?}"])
def test_required_error_without_message(template):
    err = _missing(template)
    assert err.message == ""
    assert str(err) == f"required variable {err.name} is missing a value"


def test_required_message_is_interpolated():
    err = _missing("${UNSET?need $SET and ${MSG}}")
    assert err.message == "need val and from-env"


def test_arguments_are_interpolated_eagerly():
    # compose-go evaluates the default even when the variable is set
    err = _missing("${SET:-${UNSET:?boom}}")
    assert (err.name, err.message) == ("UNSET", "boom")
    with pytest.raises(InterpolationError) as info:
        interpolate("${SET:-${}}", ENV)
    assert info.value.offset == 7
    with pytest.raises(MissingRequiredVariable):
        interpolate("${UNSET:+${UNSET:?x}}", ENV)


@pytest.mark.parametrize(
    "template,error",
    [
        ("${UNSET:?m} ${}", MissingRequiredVariable),
        ("${} ${UNSET:?m}", InterpolationError),
        ("${UNSET:?${}}", InterpolationError),  # the message is interpolated first
        ("${UNSET:?a} ${UNSET2:?b}", MissingRequiredVariable),
    ],
)
def test_first_error_in_processing_order_wins(template, error):
    with pytest.raises(error) as info:
        interpolate(template, ENV)
    if error is MissingRequiredVariable:
        assert info.value.name == "UNSET"


# ---------------------------------------------------------------------------
# Invalid templates
# ---------------------------------------------------------------------------

INVALID = [
    # (template, offset of the offending '$')
    ("${}", 0),
    ("${", 0),
    ("x${", 1),
    ("${A", 0),
    ("a ${A", 2),
    ("${A B}", 0),
    ("${ A}", 0),
    ("${A }", 0),
    ("${-x}", 0),
    ("${:-x}", 0),
    ("${1}", 0),
    ("${1A}", 0),
    ("${A:x}", 0),
    ("${A::-x}", 0),
    ("${A.B}", 0),
    ("${A[0]}", 0),
    ("${A*}", 0),
    ("${A:-x", 0),
    ("${A:-x\n}", 0),
    ("${\u00e9}", 0),
    ("${SET}${", 6),
    ("$${}${}", 4),
    ("${UNSET:-${}}", 9),
    ("${UNSET:-${A}", 9),  # the argument is "${A", which is invalid on its own
    ("${UNSET:-${B:-${}}}", 14),
]


@pytest.mark.parametrize("template,offset", INVALID)
def test_invalid_template(template, offset):
    with pytest.raises(InterpolationError) as info:
        interpolate(template, ENV)
    err = info.value
    assert err.offset == offset
    assert template[err.offset : err.offset + 2] == "${"
    assert "invalid interpolation format" in str(err)
    assert f"offset {offset}" in str(err)
    assert isinstance(err, ValueError)
    with pytest.raises(InterpolationError) as info2:
        find_references(template)
    assert info2.value.offset == offset


@pytest.mark.parametrize(
    "template,fragment",
    [
        ("${}", "empty variable name"),
        ("${", "at end of text"),
        ("${-x}", "must start with a letter"),
        ("${A", "missing '}'"),
        ("${A:-x", "missing '}'"),
        ("${A B}", "unexpected ' '"),
    ],
)
def test_invalid_template_messages_are_specific(template, fragment):
    with pytest.raises(InterpolationError) as info:
        interpolate(template, {})
    assert fragment in str(info.value)


# ---------------------------------------------------------------------------
# find_references
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("no refs", []),
        ("$$A $$$$ $ $1", []),
        ("$A", [VarRef("A", None, None, 0, 2)]),
        ("x ${A} y", [VarRef("A", None, None, 2, 6)]),
        ("$$$A", [VarRef("A", None, None, 2, 4)]),
        ("$A-$B", [VarRef("A", None, None, 0, 2), VarRef("B", None, None, 3, 5)]),
        ("${A:-d}", [VarRef("A", ":-", "d", 0, 7)]),
        ("${A-d}", [VarRef("A", "-", "d", 0, 6)]),
        ("${A:?msg}", [VarRef("A", ":?", "msg", 0, 9)]),
        ("${A?}", [VarRef("A", "?", "", 0, 5)]),
        ("${A:+alt}", [VarRef("A", ":+", "alt", 0, 9)]),
        ("${A+alt}", [VarRef("A", "+", "alt", 0, 8)]),
        ("${A:-x:?y}", [VarRef("A", ":-", "x:?y", 0, 10)]),
        ("${A:-x}}", [VarRef("A", ":-", "x", 0, 7)]),
        ("${A:-x{}y}", [VarRef("A", ":-", "x{}y", 0, 10)]),
        (
            "a ${A:-${B:?x $C}} $D ${E}",
            [
                VarRef("A", ":-", "${B:?x $C}", 2, 18),
                VarRef("B", ":?", "x $C", 7, 17),
                VarRef("C", None, None, 14, 16),
                VarRef("D", None, None, 19, 21),
                VarRef("E", None, None, 22, 26),
            ],
        ),
        (
            "${A-x}}${B-y}",
            [VarRef("A", "-", "x", 0, 6), VarRef("B", "-", "y", 7, 13)],
        ),
        ("${A:-$$B}", [VarRef("A", ":-", "$$B", 0, 9)]),
        ("\u00e9$A", [VarRef("A", None, None, 1, 3)]),
    ],
)
def test_find_references(text, expected):
    assert find_references(text) == expected


@pytest.mark.parametrize(
    "operator,has_default,required",
    [
        (None, False, False),
        (":-", True, False),
        ("-", True, False),
        (":+", True, False),
        ("+", True, False),
        (":?", False, True),
        ("?", False, True),
    ],
)
def test_varref_properties(operator, has_default, required):
    ref = VarRef("A", operator, None if operator is None else "", 0, 1)
    assert ref.has_default is has_default
    assert ref.required is required


def test_find_references_does_not_depend_on_values():
    # required references are reported, not raised
    refs = find_references("${NOPE_NOT_SET_ANYWHERE:?x}")
    assert [(r.name, r.required) for r in refs] == [("NOPE_NOT_SET_ANYWHERE", True)]


def test_varref_is_frozen():
    ref = VarRef("A", None, None, 0, 2)
    with pytest.raises(AttributeError):
        ref.name = "B"  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

# Text built from the characters that matter to the parser, plus some ordinary ones.
_template_text = st.text(alphabet="$${}{}:-?+ABab_1 x\n\u00e9", max_size=30)
_names = st.sampled_from(["A", "B", "a", "_", "AB"])
_env = st.dictionaries(_names, st.sampled_from(["", "v", "$", "}{", "x y"]), max_size=5)


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=40), _env)
def test_property_text_without_dollar_is_unchanged(text, env):
    assert interpolate(text, env) == text
    assert find_references(text) == []


@given(st.text(max_size=40), _env)
def test_property_escaping_every_dollar_round_trips(text, env):
    escaped = text.replace("$", "$$")
    assert interpolate(escaped, env) == text
    assert find_references(escaped) == []


@settings(max_examples=300)
@given(_template_text)
def test_property_validity_does_not_depend_on_values(text):
    # compose-go interpolates every argument eagerly, so a template is either
    # invalid for every environment or for none.
    try:
        find_references(text)
    except InterpolationError as exc:
        with pytest.raises(InterpolationError) as info:
            interpolate(text, AllSet())
        assert info.value.offset == exc.offset
    else:
        interpolate(text, AllSet())  # must not raise


@settings(max_examples=300)
@given(_template_text, _env)
def test_property_references_are_ordered_and_nested(text, env):
    try:
        refs = find_references(text)
    except InterpolationError:
        return
    starts = [r.start for r in refs]
    assert starts == sorted(starts)
    for ref in refs:
        assert text[ref.start] == "$"
        assert ref.start < ref.end <= len(text)
        # every reference is a valid template by itself whose first reference is itself
        own = find_references(text[ref.start : ref.end])
        assert own[0] == VarRef(ref.name, ref.operator, ref.argument, 0, ref.end - ref.start)
        if ref.operator is not None:
            assert text[ref.end - 1] == "}"
            assert text[ref.end - 1 - len(ref.argument) : ref.end - 1] == ref.argument
    # references never partially overlap
    for a in refs:
        for b in refs:
            if a.start < b.start < a.end:
                assert b.end <= a.end


@settings(max_examples=300)
@given(_template_text, _env)
def test_property_interpolation_is_compositional(text, env):
    # Interpolating the whole text equals interpolating the pieces between and at the
    # top-level references separately.
    try:
        refs = find_references(text)
        whole = interpolate(text, env)
    except (InterpolationError, MissingRequiredVariable):
        return
    pieces, pos = [], 0
    for ref in refs:
        if ref.start < pos:  # nested inside the previous top-level reference
            continue
        pieces += [text[pos : ref.start], text[ref.start : ref.end]]
        pos = ref.end
    pieces.append(text[pos:])
    assert whole == "".join(interpolate(p, env) for p in pieces)


@given(_names, st.sampled_from(["", "v", "$x"]), st.text(alphabet="ab -:?+", max_size=8))
def test_property_operators_agree_with_definition(name, value, arg):
    for env in ({name: value}, {}):
        is_set = name in env
        nonempty = env.get(name, "") != ""
        v = env.get(name, "")
        assert interpolate(f"${{{name}:-{arg}}}", env) == (v if nonempty else arg)
        assert interpolate(f"${{{name}-{arg}}}", env) == (v if is_set else arg)
        assert interpolate(f"${{{name}:+{arg}}}", env) == (arg if nonempty else "")
        assert interpolate(f"${{{name}+{arg}}}", env) == (arg if is_set else "")
