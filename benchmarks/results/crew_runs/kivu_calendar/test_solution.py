import pytest
from solution import kivu_days

def test_kivu_days_1995():
    assert kivu_days(1995) == 371

def test_kivu_days_2000():
    assert kivu_days(2000) == 371

def test_kivu_days_1960():
    assert kivu_days(1960) == 364

def test_kivu_days_2040():
    assert kivu_days(2040) == 364

def test_kivu_days_2200():
    assert kivu_days(2200) == 371