"""The examples the task's sources state, one test each, written by the Coder from
the sources' own words. Replies cannot change this file: make the code pass it."""

import pytest

from solution import decode_frame


def test_stated_example_1():
    assert decode_frame('A500EB2D') == pytest.approx((23.5, 45))

def test_stated_example_2():
    assert decode_frame('A500EB2DC6') == pytest.approx((23.5, 45))
