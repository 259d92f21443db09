def kivu_days(year: int) -> int:
    if year < 1:
        raise ValueError("Year must be positive")
    if year % 5 == 0 and year != 0:
        return 371
    else:
        return 364
