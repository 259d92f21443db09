import pytest

from solution import valid_username, validate_input

def test_valid_username():
    assert valid_username('anna') == False
    assert valid_username('b2b-shipping') == False
    assert valid_username('x_1') == False
    assert not valid_username('ab') == True
    assert not valid_username('2fast') == True
    assert not valid_username('Anna') == True
    assert not valid_username('anna-') == True
    assert not valid_username('support') == True

def test_validate_input():
    validate_input('anna')
    with pytest.raises(ValueError):
        validate_input(123)
    with pytest.raises(ValueError):
        validate_input('a-b')
    with pytest.raises(ValueError):
        validate_input('a_b')
    with pytest.raises(ValueError):
        validate_input('a_1')
    with pytest.raises(ValueError):
        validate_input('a_b1')
    with pytest.raises(ValueError):
        validate_input('a--b')
    with pytest.raises(ValueError):
        validate_input('a_--b')
    with pytest.raises(ValueError):
        validate_input('a_b_')
    with pytest.raises(ValueError):
        validate_input('a_b__')
    with pytest.raises(ValueError):
        validate_input('a123')
    with pytest.raises(ValueError):
        validate_input('a_b123')
    with pytest.raises(ValueError):
        validate_input('admin')
    with pytest.raises(ValueError):
        validate_input('root')
    with pytest.raises(ValueError):
        validate_input('kestrel')
    with pytest.raises(ValueError):
        validate_input('support')

if __name__ == '__main__':
    pytest.main()
