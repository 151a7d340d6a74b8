"""Vital signs: the ranges a living person can show, their units, and BMI.

Pure: no database and no session, so the visits service, its forms and schemas and the
printed prescription all read them from here.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from qure.visits.models import Visit

# What a living person can show, per vital sign (inclusive), in the stored unit.
VITAL_RANGES: dict[str, tuple[Decimal, Decimal, str]] = {
    "bp_systolic": (Decimal(50), Decimal(300), "mmHg"),
    "bp_diastolic": (Decimal(20), Decimal(200), "mmHg"),
    "temperature_c": (Decimal(25), Decimal(45), "°C"),
    "pulse": (Decimal(20), Decimal(250), "beats a minute"),
    "spo2": (Decimal(50), Decimal(100), "%"),
    "weight_kg": (Decimal("0.3"), Decimal(500), "kg"),
    "height_cm": (Decimal(20), Decimal(272), "cm"),
    "respiratory_rate": (Decimal(4), Decimal(80), "breaths a minute"),
}
WHOLE = ("bp_systolic", "bp_diastolic", "pulse", "spo2", "respiratory_rate")


def bmi(visit: Visit) -> Decimal | None:
    """Body-mass index from weight and height, one decimal place."""
    if not visit.weight_kg or not visit.height_cm:
        return None
    metres = Decimal(visit.height_cm) / 100
    return (Decimal(visit.weight_kg) / (metres * metres)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )


def fahrenheit(celsius: Decimal | None) -> Decimal | None:
    """A stored °C temperature in °F, one decimal place."""
    if celsius is None:
        return None
    return (Decimal(celsius) * 9 / 5 + 32).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _number(value: Any, field: str, errors: dict[str, str]) -> Decimal | None:
    if value is None or value == "":
        return None
    # Vitals arrive untyped: the API's `vitals` is a free dict (each bad vital is named in
    # one answer) and the workspace form sends them as typed text; True is not a number.
    if isinstance(value, bool):
        errors[field] = "Give a number."
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        errors[field] = "Give a number."
        return None
    if not number.is_finite() or abs(number.adjusted()) > 6:
        # Nothing a person measures has more digits; it also keeps arithmetic in range.
        errors[field] = "Give a number."
        return None
    return number


def check(vitals: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Vital signs as typed (temperature with `temperature_unit` C or F) in stored units
    (°C), and a field error for anything a living person cannot show: (values, errors)."""
    if not isinstance(vitals, dict):
        return {}, {"vitals": "Give the vital signs."}
    known = {*VITAL_RANGES, "temperature", "temperature_unit"} - {"temperature_c"}
    errors = {f"vitals.{k}": "Unknown field." for k in vitals if k not in known}
    out: dict[str, Any] = {}
    unit = str(vitals.get("temperature_unit") or "C").strip().upper()
    if unit not in ("C", "F"):
        errors["vitals.temperature_unit"] = "C or F."
    for key in VITAL_RANGES:
        source = "temperature" if key == "temperature_c" else key
        if source not in vitals:
            continue
        value = _number(vitals.get(source), f"vitals.{source}", errors)
        if value is not None and key == "temperature_c" and unit == "F":
            value = (value - 32) * 5 / 9
        if value is not None:
            low, high, label = VITAL_RANGES[key]
            if key in WHOLE and value != value.to_integral_value():
                errors[f"vitals.{source}"] = "Give a whole number."
            elif not low <= value <= high:
                shown = "°F" if key == "temperature_c" and unit == "F" else label
                low_shown, high_shown = (
                    (fahrenheit(low), fahrenheit(high)) if shown == "°F" else (low, high)
                )
                errors[f"vitals.{source}"] = f"Between {low_shown} and {high_shown} {shown}."
            else:
                places = (
                    Decimal("0.1") if key in ("temperature_c", "height_cm") else Decimal("0.01")
                )
                value = int(value) if key in WHOLE else value.quantize(places, ROUND_HALF_UP)
        if f"vitals.{source}" not in errors:
            out[key] = value
    return out, errors
