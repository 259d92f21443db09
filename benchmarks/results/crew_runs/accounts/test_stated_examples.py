"""The examples the task's sources state, one test each, written by the Coder from
the sources' own words. Replies cannot change this file: make the code pass it."""

import pytest

from solution import valid_username


def test_stated_example_1():
    assert valid_username('anna') == True

def test_stated_example_2():
    assert valid_username('b2b-shipping') == True

def test_stated_example_3():
    assert valid_username('x_1') == True

def test_stated_example_4():
    assert valid_username('ab') == False

def test_stated_example_5():
    assert valid_username('2fast') == False

def test_stated_example_6():
    assert valid_username('Anna') == False

def test_stated_example_7():
    assert valid_username('anna-') == False

def test_stated_example_8():
    assert valid_username('support') == False
