"""Numbers for people: three significant figures, grouped thousands, units, and phrases instead of dicts."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from doughflow.reporting.numbers import human, human_bytes, human_seconds, percent, words


def test_examples_from_a_real_report():
    assert human(0.13604) == "0.136" and human(2.3211) == "2.32" and human(6.24) == "6.24"
    assert human(7.152557e-07) == "7.15e-07" and human(1234.5) == "1,230" and human(6400) == "6,400"
    assert human(0.9996) == "1.00" and human(999.6) == "1,000" and human(0.0) == "0"
    assert human(np.float32(0.5)) == "0.500" and human(np.int64(12345)) == "12,345"
    assert human(None) == "-" and human(float("nan")) == "-" and human(True) == "True" and human("x") == "x"
    assert human(5.4615, "img/s") == "5.46 img/s" and percent(0.136) == "13.6 %" and percent(None) == "-"
    assert human_bytes(234663) == "229 KiB" and human_bytes(512) == "512 B" and human_bytes(None) == "-"
    assert human_seconds(70.3) == "70.3 s" and human_seconds(725) == "12.1 min" and human_seconds(9000) == "2.50 h"


def test_words_never_dumps_a_dict():
    text = words(
        {
            "kind": "image",
            "seconds": {"candidates": 1.43, "signature_check": 0.33},
            "blocks": 11,
            "predictions": [[1.0, 2.5]],
            "topping": None,
        }
    )
    assert text == (
        "kind image, seconds (candidates 1.43 s, signature check 0.330 s), blocks 11, "
        "predictions (1.00, 2.50), topping -"
    )
    assert not set("{}[]'") & set(text)


@given(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False))
def test_human_keeps_three_significant_figures(value):
    text = human(value)
    back = float(text.replace(",", ""))
    assert math.isclose(back, value, rel_tol=5e-3, abs_tol=0) or value == 0
    digits = text.replace(",", "").replace("-", "").split("e")[0].replace(".", "").lstrip("0")
    if abs(value) < 1e3:  # grouped thousands are whole numbers: their digits beyond three are zeros
        assert len(digits) <= 3, text


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text("abc ", max_size=5),
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(st.text("ab_", max_size=3), children, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_words_of_any_json_like_value_has_no_python_repr(value):
    text = words(value)
    assert "{'" not in text and "['" not in text and "': " not in text
