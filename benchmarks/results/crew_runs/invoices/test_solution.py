import pytest
from solution import invoice_number

def test_invoice_number():
    assert invoice_number(2024, 42) == 'KF-2024-00042-G'
    assert invoice_number(2024, 99999) == 'KF-2024-99999-T'
    with pytest.raises(ValueError):
        invoice_number(2024, 0)
    with pytest.raises(ValueError):
        invoice_number(2024, 100000)

# Example run of test_stated_examples.py to check the correctness
if __name__ == '__main__':
    import subprocess
    subprocess.run(['python', 'test_stated_examples.py'])
