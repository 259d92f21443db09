def valid_username(name: str) -> bool:
    if not 3 <= len(name) <= 16:
        return False
    if not name[0].isalpha():
        return False
    if not name[-1].isalpha() and not name[-1].isdigit():
        return False
    for i in range(len(name) - 1):
        if name[i] == '-' or name[i] == '_':
            if name[i + 1] == '-' or name[i + 1] == '_':
                return False
    reserved_names = ['admin', 'root', 'kestrel', 'support']
    return name not in reserved_names

def validate_input(name: str) -> None:
    if not isinstance(name, str):
        raise ValueError("Name must be a string")
    if len(name) < 3 or len(name) > 16:
        raise ValueError("Name must be between 3 and 16 characters long")
    if not name[0].isalpha():
        raise ValueError("Name must start with a letter")
    if not name[-1].isalpha() and not name[-1].isdigit():
        raise ValueError("Name must end with a letter or a digit")
    for i in range(len(name) - 1):
        if name[i] == '-' or name[i] == '_':
            if name[i + 1] == '-' or name[i + 1] == '_':
                raise ValueError("Two separators cannot follow each other (`a--b` and `a_-b` are invalid)")
    reserved_names = ['admin', 'root', 'kestrel', 'support']
    return name not in reserved_names

test_solution.py
```python
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
