import pytest
from solution import kivu_days

for year, days in ((1995, 371), (2000, 371), (1960, 364), (2040, 364), (2200, 371),
                   (2001, 364), (5, 371), (400, 371), (80, 364)):
    assert kivu_days(year) == days, year
for bad in (0, -5):
    with pytest.raises(ValueError):
        kivu_days(bad)
