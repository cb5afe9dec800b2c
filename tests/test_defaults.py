"""medseg.defaults: what medseg takes where nothing is given, one value each for the library, the commands and the
cohort workflow's config, in a module that loads neither torch nor numpy (the commands read it as they start)."""

import subprocess
import sys
from pathlib import Path

import yaml

from medseg.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]


def test_the_commands_take_the_librarys_defaults():
    """The batch size was the literal 16 in the options of infer and cohort infer and in the cohort's options, as
    medseg.inference's DEFAULT_BATCH_SIZE, which the commands could not import without loading torch."""
    from medseg.cli.cohort import infer as cohort_infer
    from medseg.cli.infer import infer
    from medseg.cohort.run import InferOptions

    for command in (infer, cohort_infer):
        given = {param.name: param.default for param in command.params}
        assert (given["batch_size"], given["model"]) == (DEFAULT_BATCH_SIZE, DEFAULT_MODEL) == (16, "phantom")
    assert (InferOptions().batch_size, InferOptions().model) == (DEFAULT_BATCH_SIZE, DEFAULT_MODEL)


def test_the_package_loader_and_the_workflow_config_take_them_too():
    """(The segmenter's own default: test_inference, which loads torch and MONAI anyway.)"""
    import medseg.package

    assert medseg.package.DEFAULT_MODEL == DEFAULT_MODEL
    config = yaml.safe_load((REPO / "configs" / "cohort.yaml").read_text())
    schema = yaml.safe_load((REPO / "configs" / "schemas" / "config.schema.yaml").read_text())
    assert config["batch_size"] == schema["properties"]["batch_size"]["default"] == DEFAULT_BATCH_SIZE
    assert config["model"] == DEFAULT_MODEL


def test_the_defaults_load_no_torch_nor_numpy():
    code = "import sys, medseg.defaults; print(sorted({'torch', 'numpy', 'click'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr
