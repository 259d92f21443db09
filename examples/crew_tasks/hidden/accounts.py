from solution import valid_username

for good in ("anna", "b2b-shipping", "x_1", "abc", "a" * 16, "ab-cd_ef"):
    assert valid_username(good) is True, good
for bad in ("ab", "a" * 17, "2fast", "Anna", "anna-", "anna_", "a--b", "a_-b", "support",
            "admin", "root", "kestrel", "an na", "anna!", "", "_anna"):
    assert valid_username(bad) is False, bad
