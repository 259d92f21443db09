import pytest

def invoice_number(year: int, sequence: int) -> str:
    if not 1 <= sequence <= 99999:
        raise ValueError("Sequence must be between 1 and 99999")
    
    digits = [int(d) for d in str(sequence)]
    sum_of_digits = sum(digits)
    check_letter = chr((sum_of_digits % 26) + ord('A'))
    
    return f"KF-{year}-{sequence}-{check_letter}"

def test_invoice_number():
    assert invoice_number(2024, 1) == 'KF-2024-00001-A'
    assert invoice_number(2024, 99999) == "KF-2024-99999-Z"
    with pytest.raises(ValueError):
        invoice_number(2024, 0)
    with pytest.raises(ValueError):
        invoice_number(2024, 100000)
    assert invoice_number(2024, 42) == "KF-2024-00042-G"
