"""The examples the task's sources state, one test each, written by the Coder from
the sources' own words. Replies cannot change this file: make the code pass it."""

import pytest

from solution import kivu_days


def test_stated_example_1():
    assert kivu_days(1) == 364

def test_stated_example_2():
    assert kivu_days(5) == 371

def test_stated_example_3():
    assert kivu_days(7) == 371
