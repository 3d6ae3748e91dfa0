from __future__ import annotations


def test_errors_are_typed_input_errors() -> None:
    from companion.errors import Conflict, InvalidInput, NotFound
    from companion.monitoring import (
        InvalidLabels,
        InvalidMetricName,
        InvalidQuantile,
        InvalidThreshold,
        InvalidWindow,
        MetricNotFound,
        MetricTypeConflict,
        UnknownAlertLevel,
    )

    for error in (
        InvalidLabels,
        InvalidMetricName,
        InvalidQuantile,
        InvalidThreshold,
        InvalidWindow,
        UnknownAlertLevel,
    ):
        assert issubclass(error, InvalidInput)
        assert issubclass(error, ValueError)
    assert issubclass(MetricNotFound, NotFound)
    assert issubclass(MetricTypeConflict, Conflict)
