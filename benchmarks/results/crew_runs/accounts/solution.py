def valid_username(name: str) -> bool:
    if len(name) < 3 or len(name) > 16:
        return False
    if not name[0].isalpha():
        return False
    if not name[-1].isalpha() and not name[-1].isdigit():
        return False
    for i in range(len(name) - 2):
        if name[i] == '-' or name[i] == '_':
            if name[i + 1] == '-' or name[i + 1] == '_':
                return False
    return True
