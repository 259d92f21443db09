import pytest
from solution import kivu_days

def test_kivu_days():
    # Test cases with expected values
    assert kivu_days(1) == 364
    assert kivu_days(2) == 364
    assert kivu_days(3) == 364
    assert kivu_days(4) == 364
    assert kivu_days(5) == 371
    assert kivu_days(10) == 371
    assert kivu_days(20) == 371
    assert kivu_days(30) == 371
    assert kivu_days(40) == 371
    assert kivu_days(50) == 371
    assert kivu_days(60) == 371
    assert kivu_days(70) == 371
    assert kivu_days(80) == 371
    assert kivu_days(90) == 371
    assert kivu_days(100) == 371
    assert kivu_days(150) == 371
    assert kivu_days(200) == 371
    assert kivu_days(300) == 371
    assert kivu_days(400) == 371
    assert kivu_days(500) == 371
    assert kivu_days(600) == 371
    assert kivu_days(700) == 371
    assert kivu_days(800) == 371
    assert kivu_days(900) == 371
    assert kivu_days(1000) == 371

    # Test cases with error cases
    with pytest.raises(ValueError):
        kivu_days(-1)
    with pytest.raises(ValueError):
        kivu_days(0)
