def kivu_days(year: int) -> int:
    if year < 1:
        raise ValueError("Year numbers start at 1; year 0 and negative years do not exist (ValueError)")
    
    if year % 5 == 0 and year % 40 != 0:
        return 371
    elif year % 200 == 0:
        return 371
    else:
        return 364
