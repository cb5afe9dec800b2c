"""medseg.package_labels: the checks of label codes that the schema's patterns cannot make."""

import json

import pytest

from medseg.errors import ModelPackageError
from medseg.package import load_package


@pytest.mark.parametrize("field, text, message", [
    ("value", 91723000, "label_codes/2/category/value is the number 91723000: write it in quotes"),
    ("value", 5366008.0, "label_codes/2/category/value is the number 5366008.0: write it in quotes"),
    ("meaning", "left\\right", r"label_codes/2/category/meaning 'left\\right' must be printable ASCII without a "
                                 "backslash"),
    ("meaning", "Kopf \u00dc", "label_codes/2/category/meaning 'Kopf \u00dc' must be printable ASCII"),
    ("meaning", "tab\there", r"label_codes/2/category/meaning 'tab\there' must be printable ASCII"),
    ("value", " 5", "and not start or end with a space"),
])
def test_code_texts_a_seg_could_not_hold_are_refused_in_words(make_package, field, text, message):
    """A number became "5366008.0" in the SEG (YAML reads 0017 as 15), a backslash split a meaning into two values,
    a non-ASCII letter was written as a raw byte under the default character set."""
    import re

    path = make_package()
    config = json.loads((path / "model.json").read_text())
    category = {"scheme": "SCT", "value": "91723000", "meaning": "Anatomical Structure", field: text}
    config["label_codes"] = {"2": {"category": category,
                                   "type": {"scheme": "SCT", "value": "5366008", "meaning": "Hippocampus"}}}
    (path / "model.json").write_text(json.dumps(config))
    with pytest.raises(ModelPackageError, match=re.escape(f"{path / 'model.json'}: ")) as info:
        load_package(path)
    assert message in str(info.value), str(info.value)
