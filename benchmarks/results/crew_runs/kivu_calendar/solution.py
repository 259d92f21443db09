def kivu_days(year: int) -> int:
    if year < 1:
        raise ValueError("Year cannot be below 1")
    
    if year % 5 == 0 and year % 40 != 0:
        return 371
    else:
        return 364

# Check function to verify the correctness of the solution
def check_kivu_days():
    assert kivu_days(1995) == 371, "Test case 1 failed"
    assert kivu_days(2000) == 371, "Test case 2 failed"
    assert kivu_days(2024) == 364, "Test case 3 failed"
    assert kivu_days(0) == ValueError("Year cannot be below 1"), "Test case 4 failed"

check_kivu_days()
