import pytest

# tests/ is a package: test modules import their helpers as tests.helpers.*, whose asserts pytest rewrites too
pytest.register_assert_rewrite("tests.helpers")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/sandbox/" in str(item.fspath):
            item.add_marker(pytest.mark.sandbox)


def pytest_assertrepr_compare(config, op, left, right):
    """`assert SECRET not in output` must not print the secret when it fails.

    pytest's own explanation of a failed `not in` shows both strings with the match marked, which
    would put the secret in the test log. This one says where it was found and shows the
    surroundings with the match masked.
    """
    if op != "not in" or not isinstance(left, str) or not isinstance(right, str) or not left:
        return None
    at = right.find(left)
    around = right[max(0, at - 80):at + len(left) + 80].replace(left, "****")
    return [f"a forbidden text ({len(left)} characters, not shown) occurs in the output "
            f"({len(right)} characters) at offset {at}", f"around it (masked): {around!r}"]
