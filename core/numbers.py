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


def duration(seconds: float) -> str:
    """An estimated time, rounded as estimates deserve, in the unit that reads best.

    Example:
        >>> duration(0.4), duration(42), duration(300), duration(5 * 3600), duration(3 * 86400), duration(2.3e8)
        ('< 1 s', '~42 s', '~5.0 min', '~5.0 h', '~3.0 days', '~7.3 years')
    """
    if seconds < 1:
        return "< 1 s"
    for unit, size, below in (("s", 1, 90), ("min", 60, 5400), ("h", 3600, 2 * 86400), ("days", 86400, 730 * 86400)):
        if seconds < below:
            return f"~{seconds:.0f} s" if unit == "s" else f"~{seconds / size:.1f} {unit}"
    return f"~{seconds / (365.25 * 86400):.1f} years"
