def invoice_number(year: int, sequence: int) -> str:
    if not 1 <= sequence <= 99999:
        raise ValueError("Sequence must be between 1 and 99999")
    
    year_str = f"{year:04d}"
    sequence_str = f"{sequence:05d}"
    check_digit = sum(int(digit) for digit in sequence_str) % 26
    check_letter = chr(65 + check_digit)
    
    return f"KF-{year_str}-{sequence_str}-{check_letter}"
