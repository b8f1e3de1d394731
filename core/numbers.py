"""How numbers are written for people: a value that rounds to zero is written ``0.000`` (``+0.000`` with its
sign), never ``-0.000`` (a difference of a model with itself, -1e-17, read as "slightly worse")."""

from __future__ import annotations


def signed(value: float, digits: int = 3) -> str:
    """``value`` with its sign at ``digits`` decimals; one that rounds to zero has a plus sign.

    Example:
        >>> signed(-0.00001), signed(0.25, 2), signed(-0.0125, 3)
        ('+0.000', '+0.25', '-0.013')
    """
    return f"{round(value, digits) + 0.0:+.{digits}f}"


def fixed(value: float, digits: int = 3) -> str:
    """``value`` at ``digits`` decimals, without the sign of a value that rounds to zero.

    Example:
        >>> fixed(-0.0001), fixed(-0.25, 2), fixed(float("nan"))
        ('0.000', '-0.25', 'nan')
    """
    return f"{round(value, digits) + 0.0:.{digits}f}"
