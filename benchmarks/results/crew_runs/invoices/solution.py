def invoice_number(year: int, sequence: int) -> str:
    if sequence < 1 or sequence > 99999:
        raise ValueError("Sequence must be between 1 and 99999")
    
    year_str = str(year)
    check_letter = chr((sum(int(digit) for digit in str(sequence)) - 1) % 26 + ord('A'))
    
    return f"KF-{year_str}-{sequence}-{check_letter}"
