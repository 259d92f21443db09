import pytest
from solution import valid_username


@pytest.mark.parametrize("name, expected", [
    ("anna", True),
    ("b2b-shipping", True),
    ("x_1", True),
    ("ab", False),
    ("2fast", False),
    ("Anna", False),
    ("anna-", False),
    ("support", False),
])
def test_valid_username(name, expected):
    assert valid_username(name) == expected
