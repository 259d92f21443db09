import pytest

from solution import kivu_days

def test_kivu_days():
    with pytest.raises(ValueError):
        kivu_days(-1)
    
    assert kivu_days(1995) == 371, "Test case 1 failed"
    assert kivu_days(2000) == 371, "Test case 2 failed"
    assert kivu_days(2024) == 364, "Test case 3 failed"
    with pytest.raises(ValueError):
        kivu_days(0)

test_kivu_days()
