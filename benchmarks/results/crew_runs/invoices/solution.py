def invoice_number(year: int, sequence: int) -> str:
    if not 1 <= sequence <= 99999:
        raise ValueError("Sequence must be between 1 and 99999")
    
    digits = [int(d) for d in str(sequence)]
    sum_of_digits = sum(digits)
    check_letter = chr((sum_of_digits % 26) + ord('A'))
    
    return f"KF-{year}-{sequence}-{check_letter}"
