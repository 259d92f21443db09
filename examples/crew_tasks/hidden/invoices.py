import pytest
from solution import invoice_number

assert invoice_number(2024, 42) == "KF-2024-00042-G"
assert invoice_number(1999, 1) == "KF-1999-00001-B"
assert invoice_number(2025, 99999) == "KF-2025-99999-T"  # 9*5 = 45, 45 % 26 = 19
assert invoice_number(2030, 12345) == "KF-2030-12345-P"  # 15 -> P
for bad in (0, 100000, -5):
    with pytest.raises(ValueError):
        invoice_number(2024, bad)
