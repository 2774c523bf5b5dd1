"""`testid(name)`: the props that give an element a stable `data-testid` for browser tests and scripts."""


def testid(name: str) -> str:
    return f'data-testid="{name}"' if name else ""
