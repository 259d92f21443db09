import pytest

from solution import invoice_number


def test_stated_examples():
    assert invoice_number(2024, 42) == 'KF-2024-00042-G'
    with pytest.raises(ValueError):
        invoice_number(2024, 0)
    with pytest.raises(ValueError):
        invoice_number(2024, 100000)
