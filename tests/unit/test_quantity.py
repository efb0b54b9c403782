"""One quantity grammar (Kubernetes' resource.Quantity) for the settings and the PVC rules."""

from decimal import Decimal

import pytest

from agent_workspace_webhook.rules.pvc import larger
from agent_workspace_webhook.rules.quantity import parse_quantity
from agent_workspace_webhook.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10Gi", 10 * 2**30),
        ("1.5Ki", 1536),
        (".5Gi", 2**29),
        ("1Ei", 2**60),
        ("12", 12),
        ("1.", 1),
        ("+3", 3),
        ("-1Ki", -1024),
        ("1G", 10**9),
        ("1.5G", 1_500_000_000),
        ("2k", 2000),
        ("1E", 10**18),  # exa, not an exponent
        ("500m", Decimal("0.5")),
        ("5u", Decimal("0.000005")),
        ("7n", Decimal("0.000000007")),
        ("1e9", 10**9),
        ("1E3", 1000),  # an exponent, not exa-and-more
        ("25e-1", Decimal("2.5")),
        ("1e+2", 100),
    ],
)
def test_valid_forms(text: str, value: int | Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    ["", ".", "+", "Gi", "1K", "1gi", "1KiB", "1e", "1e3.5", "e3", "1 Gi", " 1Gi", "1Gi ", "0x10", "1,5Gi", "\u0661"],
)
def test_invalid_forms(text: str) -> None:
    assert parse_quantity(text) is None


def test_an_exponent_beyond_any_storage_is_not_a_quantity() -> None:
    assert parse_quantity("1e999999999") is None
    assert parse_quantity("1e" + "9" * 5000) is None  # more digits than int() reads: not an error


def test_values_are_exact_whatever_their_digits() -> None:
    assert parse_quantity("9000000000000000.0000000000001k") == Decimal("9000000000000000000.0000000001")
    assert parse_quantity("0.000000000000000000867361737988403547205962240695953369140625Ei") == 1


def test_the_settings_take_what_kubernetes_takes_and_want_whole_positive_bytes() -> None:
    for size in ("10Gi", ".5Gi", "1e9", "1.5G", "2000000k", "9223372036854775807", "7.5Ei"):
        assert load_settings(storage_size=size).storage_size == size
    for size, says in [
        ("500m", "'500m' is 0.5 bytes: a storage size is a positive whole number of bytes"),
        ("0", "'0' is 0 bytes"),
        ("-1Gi", "'-1Gi' is -1073741824 bytes"),
        ("1.5", "'1.5' is 1.5 bytes"),
        ("10 Gi", "'10 Gi' is not a Kubernetes quantity such as 10Gi"),
        ("1e-999999999", "'1e-999999999' is 1e-999999999 bytes"),
        ("8Ei", "'8Ei' is 9223372036854775808 bytes, more than a volume can be: at most 9223372036854775807"),
        ("1e999999", "'1e999999' is 1e+999999 bytes, more than a volume can be"),
    ]:
        with pytest.raises(SettingsError, match="storage_size \\(WEBHOOK_STORAGE_SIZE\\)") as err:
            load_settings(storage_size=size)
        assert says in str(err.value)


def test_the_larger_of_two_sizes_reads_both_in_the_same_grammar() -> None:
    assert larger("10Gi", "20000Mi") == "20000Mi"
    assert larger("10Gi", "11e9") == "11e9"
    assert larger("10Gi", ".5Ti") == ".5Ti"
    assert larger("10Gi", "1G") == "10Gi"
    assert larger("10Gi", "nonsense") == "10Gi"
