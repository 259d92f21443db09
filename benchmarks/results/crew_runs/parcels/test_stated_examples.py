"""The examples the task's sources state, one test each, written by the Coder from
the sources' own words. Replies cannot change this file: make the code pass it."""

import pytest

from solution import shipping_cost


def test_stated_example_1():
    assert shipping_cost(2, 'domestic') == pytest.approx(6.5)
