"""The one exception the selector package raises for text a user wrote."""


class SelectorError(ValueError):
    """A selector that does not parse.

    The message names what was found, its character offset (0-based) and what the grammar
    expected there, e.g. ``unexpected "}" at position 12, expected a label key``. The parts are
    kept as attributes so that callers (resource validation, calicoctl) can re-word or point at
    the offending character.
    """

    def __init__(self, found: str, position: int, expected: str, selector: str = "") -> None:
        self.found = found
        self.position = position
        self.expected = expected
        self.selector = selector
        super().__init__(f"{found} at position {position}, expected {expected}")
