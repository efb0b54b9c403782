"""Kubernetes resource quantities ("10Gi", "1.5G", "500m", "1e9", ".5Gi"), in the one grammar of
k8s.io/apimachinery's resource.Quantity, for the settings and the PVC rules alike (pure):

    quantity ::= [+-] number [suffix]
    number   ::= digits | digits "." [digits] | "." digits
    suffix   ::= Ki | Mi | Gi | Ti | Pi | Ei          (binary SI: powers of 1024)
               | n | u | m | k | M | G | T | P | E    (decimal SI: powers of 1000)
               | (e | E) [+-] digits                  (decimal exponent)

"1E" is exa, "1E3" a thousand."""

from __future__ import annotations

import re
from decimal import Decimal

_QUANTITY = re.compile(r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:([KMGTPE]i)|([numkMGTPE])|[eE]([+-]?[0-9]+))?")
_BINARY = {s: Decimal(1024) ** (i + 1) for i, s in enumerate(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])}
_DECIMAL = {s: Decimal(10) ** e for s, e in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18), strict=True)}


def parse_quantity(text: str) -> Decimal | None:
    """The quantity's value (bytes, for a storage size), or None when it is not a quantity."""
    found = _QUANTITY.fullmatch(text)
    if found is None:
        return None
    sign, number, binary, decimal, exponent = found.groups()
    value = Decimal(number).copy_negate() if sign == "-" else Decimal(number)
    if exponent is not None:
        try:
            return value.scaleb(int(exponent))
        except ArithmeticError:  # beyond Decimal's range: no storage is that large
            return None
    if binary is not None:
        return value * _BINARY[binary]
    return value * _DECIMAL[decimal] if decimal is not None else value
