import pytest
from conftest import CONFIGS

from mirror_cli.config import ConfigSet
from mirror_cli.errors import UnknownStageError
from mirror_cli.stages import STAGE_ORDER


@pytest.fixture(scope="module")
def table():
    return ConfigSet(CONFIGS).stages


@pytest.mark.parametrize(
    "days,stage",
    [
        (0, "newReflection"),
        (6, "newReflection"),
        (7, "firstWeek"),
        (13, "firstWeek"),
        (14, "twoWeeks"),
        (29, "twoWeeks"),
        (30, "month"),
        (89, "month"),
        (90, "quarter"),
        (179, "quarter"),
        (180, "halfYear"),
        (5000, "halfYear"),
    ],
)
def test_thresholds(table, days, stage):
    assert table.stage_for_days(days) == stage


@pytest.mark.parametrize("raw", ["halfYear", "half_year", "half-year", "HALF-YEAR", "halfyear"])
def test_name_forms(table, raw):
    assert table.parse_stage(raw) == "halfYear"


def test_unknown_stage_lists_known(table):
    with pytest.raises(UnknownStageError) as err:
        table.parse_stage("yearly")
    assert "newReflection" in err.value.hint and "halfYear" in err.value.hint


def test_trilogy_targets(table):
    assert table.parse_target("future-2048") == "future2048"
    assert table.parse_target("ORIGINAL") == "original"


def test_crossed_and_due(table):
    assert table.crossed(None, 0) == ["newReflection"]
    assert table.crossed("newReflection", 6) == []
    assert table.crossed("newReflection", 7) == ["firstWeek"]
    assert table.crossed("firstWeek", 95) == ["twoWeeks", "month", "quarter"]
    assert not table.is_due("halfYear", 400)
    assert table.names == list(STAGE_ORDER)
