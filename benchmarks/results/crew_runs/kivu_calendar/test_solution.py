import pytest
from solution import kivu_days


def test_kivu_days():
    assert kivu_days(1) == 364, "Test failed for kivu_days(1)"
    assert kivu_days(5) == 371, "Test failed for kivu_days(5)"
    assert kivu_days(7) == 371, "Test failed for kivu_days(7)"
    with pytest.raises(ValueError):
        kivu_days(0)
