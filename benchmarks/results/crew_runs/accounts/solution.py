def valid_username(name: str) -> bool:
    # FACTS MISSING: Check if the name length is between 1 and 16 characters
    if len(name) < 1 or len(name) > 16:
        return False

    # FACTS MISSING: Check if the name contains only lowercase letters, digits, hyphen, or underscore
    for char in name:
        if not (char.islower() or char.isdigit() or char in '-_'):
            return False

    # FACTS MISSING: Check if the first character is a letter
    if not name[0].isalpha():
        return False

    # FACTS MISSING: Check if the last character is a letter or a digit (never `-` or `_`)
    if not (name[-1].isalpha() or name[-1].isdigit()):
        return False

    # FACTS MISSING: Check if two separators never follow each other
    if '-' in name and '_' in name:
        return False

    return True
