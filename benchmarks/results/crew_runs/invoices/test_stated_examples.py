"""The examples the task's sources state, one test each, written by the Coder from
the sources' own words. Replies cannot change this file: make the code pass it."""

import pytest

from solution import invoice_number


def test_stated_example_1():
    assert invoice_number(2024, 42) == 'KF-2024-00042-G'
