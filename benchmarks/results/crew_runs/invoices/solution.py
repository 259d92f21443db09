def invoice_number(year: int, sequence: int) -> str:
    if sequence < 1 or sequence > 99999:
        raise ValueError("Sequence outside 1..99999")
    
    digits_sum = sum(int(digit) for digit in str(sequence))
    check_letter = chr((digits_sum % 26) + ord('A'))
    
    return f'KF-{year}-{sequence:05d}-{check_letter}'

# Tests
def test_invoice_number():
    assert invoice_number(2024, 42) == 'KF-2024-00042-G'
    assert invoice_number(2024, 99999) == 'KF-2024-99999-Z'
    with pytest.raises(ValueError):
        invoice_number(2024, 0)
    with pytest.raises(ValueError):
        invoice_number(2024, 100000)
